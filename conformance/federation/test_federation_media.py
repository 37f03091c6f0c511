"""Media across servers: a user of B downloads and thumbnails media uploaded on A, which B fetches over
federation (`/_matrix/federation/v1/media/download|thumbnail`, multipart/mixed) and caches. With the pairs
synapse-parvis and parvis-synapse this covers Parvis fetching Synapse's media and Synapse fetching ours.
Docstrings name the matching Complement / sytest tests, one per line (as in ../README.md).
"""

from __future__ import annotations

import io
import struct

from nio import DownloadResponse, ResizingMethod, ThumbnailResponse, UploadResponse

from media_files import png
from helpers import assert_status, q

MEDIA_V1 = "/_matrix/client/v1/media"


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG or JPEG."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    assert data[:2] == b"\xff\xd8", f"neither PNG nor JPEG: {data[:16]!r}"
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("JPEG without a frame header")


async def upload(user, data: bytes, content_type: str, filename: str) -> tuple[str, str, str]:
    resp, _ = await user.nio.upload(io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data))
    assert isinstance(resp, UploadResponse), resp
    mxc = resp.content_uri
    server, media_id = mxc[len("mxc://"):].split("/", 1)
    return mxc, server, media_id


async def test_TestContentMediaV1(pair, make_user):
    """Complement: TestContentMediaV1
    sytest: Can download remote media
    A user of B downloads media uploaded on A, byte-identical, with its type and name; again from B's cache."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    data = bytes(range(256)) * 300
    mxc, server, media_id = await upload(alice, data, "application/octet-stream", "remote.bin")
    assert server == pair.a.server_name
    for _ in range(2):
        resp = await bob.nio.download(mxc=mxc)
        assert isinstance(resp, DownloadResponse), resp
        assert resp.body == data
        assert resp.content_type == "application/octet-stream"
        assert resp.filename == "remote.bin"
    r = await bob.req("GET", f"{MEDIA_V1}/download/{q(server)}/{q(media_id)}")
    assert_status(r, 200)
    assert r.headers["Content-Disposition"].startswith("attachment"), r.headers["Content-Disposition"]


async def test_TestRemotePngThumbnail(pair, make_user):
    """Complement: TestRemotePngThumbnail
    Complement: TestFederationThumbnail
    sytest: Remote media can be thumbnailed
    A user of B asks thumbnails of a PNG uploaded on A: crop gives the exact size, scale fits within it."""
    alice = await make_user(pair.a)
    bob = await make_user(pair.b)
    image = png(400, 200)
    mxc, server, media_id = await upload(alice, image, "image/png", "wide.png")
    resp = await bob.nio.thumbnail(server, media_id, 96, 96, ResizingMethod.crop)
    assert isinstance(resp, ThumbnailResponse), resp
    assert resp.content_type in ("image/png", "image/jpeg"), resp.content_type
    assert image_size(resp.body) == (96, 96)
    resp = await bob.nio.thumbnail(server, media_id, 320, 240, ResizingMethod.scale)
    assert isinstance(resp, ThumbnailResponse), resp
    assert image_size(resp.body) == (320, 160)
    # The original too.
    resp = await bob.nio.download(mxc=mxc)
    assert isinstance(resp, DownloadResponse) and resp.body == image, resp


async def test_remote_media_unknown(pair, make_user):
    """sytest: Remote media that does not exist is 404 M_NOT_FOUND"""
    bob = await make_user(pair.b)
    r = await bob.req("GET", f"{MEDIA_V1}/download/{q(pair.a.server_name)}/doesNotExist123")
    assert_status(r, 404, "M_NOT_FOUND")
