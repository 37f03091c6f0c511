"""Content repository: uploads and downloads through matrix-nio, thumbnails, async uploads, headers.
Complement: TestContentCSAPIMediaV1, TestMediaConfig, TestMediaFilenames, TestMediaWithoutFileNameCSMediaV1,
TestLocalPngThumbnail, TestAsyncUpload, TestRoomImageRoundtrip."""

import io
import struct

from nio import DownloadResponse, ThumbnailResponse, UploadResponse

from media_files import png
from helpers import CS, assert_status, q

MEDIA_V1 = "/_matrix/client/v1/media"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return struct.unpack(">II", data[16:24])


async def nio_upload(user, data: bytes, content_type: str, filename: str | None) -> str:
    resp, _keys = await user.nio.upload(io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data))
    assert isinstance(resp, UploadResponse), resp
    assert resp.content_uri.startswith("mxc://"), resp.content_uri
    return resp.content_uri


def split(mxc: str) -> tuple[str, str]:
    server, media_id = mxc[len("mxc://"):].split("/", 1)
    return server, media_id


async def test_TestContentCSAPIMediaV1(alice):
    """Complement: TestContentCSAPIMediaV1 (upload, then download on /_matrix/client/v1/media/download, byte-identical)
    (nio.AsyncClient.upload / download)"""
    data = bytes(range(256)) * 1000
    mxc = await nio_upload(alice, data, "application/octet-stream", "blob.bin")
    resp = await alice.nio.download(mxc=mxc)
    assert isinstance(resp, DownloadResponse), resp
    assert resp.body == data
    assert resp.content_type == "application/octet-stream"
    assert resp.filename == "blob.bin"


async def test_TestMediaFilenames(alice):
    """Complement: TestMediaFilenames (ASCII, spaces and non-ASCII names come back in Content-Disposition)"""
    for name, expected in [
        ("ascii.txt", "inline; filename=ascii.txt"),
        ("name with spaces.txt", 'inline; filename="name with spaces.txt"'),
        ("☃.txt", "inline; filename*=utf-8''%E2%98%83.txt"),
    ]:
        mxc = await nio_upload(alice, b"some text", "text/plain", name)
        server, media_id = split(mxc)
        r = await alice.req("GET", f"{MEDIA_V1}/download/{q(server)}/{q(media_id)}")
        assert_status(r, 200)
        assert r.headers["Content-Disposition"] == expected, (name, r.headers["Content-Disposition"])
        resp = await alice.nio.download(mxc=mxc)
        assert isinstance(resp, DownloadResponse) and resp.filename == name, resp
        # A name asked in the path replaces the stored one.
        r = await alice.req("GET", f"{MEDIA_V1}/download/{q(server)}/{q(media_id)}/other.txt")
        assert r.headers["Content-Disposition"] == "inline; filename=other.txt"


async def test_TestMediaWithoutFileNameCSMediaV1(alice):
    """Complement: TestMediaWithoutFileNameCSMediaV1 (no filename: no filename in the disposition)"""
    mxc = await nio_upload(alice, b"no name here", "text/plain", None)
    server, media_id = split(mxc)
    r = await alice.req("GET", f"{MEDIA_V1}/download/{q(server)}/{q(media_id)}")
    assert_status(r, 200)
    assert r.text == "no name here"
    assert r.headers["Content-Disposition"] == "inline"


async def test_TestMediaConfig(alice):
    """Complement: TestMediaConfig (sytest: Can read configuration endpoint) on both endpoint families"""
    resp = await alice.nio.content_repository_config()
    assert resp.upload_size > 0, resp
    r = await alice.req("GET", "/_matrix/media/v3/config")
    assert_status(r, 200)
    assert r.body["m.upload.size"] == resp.upload_size


async def test_TestLocalPngThumbnail(alice):
    """Complement: TestLocalPngThumbnail (sytest: POSTed media can be thumbnailed), crop and scale
    (nio.AsyncClient.thumbnail)"""
    from nio import ResizingMethod

    mxc = await nio_upload(alice, png(400, 200), "image/png", "wide.png")
    server, media_id = split(mxc)
    resp = await alice.nio.thumbnail(server, media_id, 96, 96, ResizingMethod.crop)
    assert isinstance(resp, ThumbnailResponse), resp
    assert resp.content_type == "image/png"
    assert png_size(resp.body) == (96, 96)
    resp = await alice.nio.thumbnail(server, media_id, 320, 240, ResizingMethod.scale)
    assert isinstance(resp, ThumbnailResponse), resp
    assert png_size(resp.body) == (320, 160)
    r = await alice.req("GET", f"{MEDIA_V1}/thumbnail/{q(server)}/{q(media_id)}", params={"width": 32, "height": 32, "method": "crop"})
    assert_status(r, 200)
    assert r.headers["Content-Disposition"] == "inline; filename=thumbnail.png"
    # Not an image: 400 M_UNKNOWN.
    text = await nio_upload(alice, b"plain", "text/plain", "a.txt")
    s2, m2 = split(text)
    r = await alice.req("GET", f"{MEDIA_V1}/thumbnail/{q(s2)}/{q(m2)}", params={"width": 32, "height": 32})
    assert_status(r, 400, "M_UNKNOWN")


async def test_TestAsyncUpload(alice, bob):
    """Complement: TestAsyncUpload (create, download before upload is M_NOT_YET_UPLOADED, upload once, then download)"""
    created = await alice.ok("POST", "/_matrix/media/v1/create", json={})
    mxc = created["content_uri"]
    assert isinstance(created["unused_expires_at"], int)
    server, media_id = split(mxc)
    r = await alice.req("GET", f"{MEDIA_V1}/download/{q(server)}/{q(media_id)}", params={"timeout_ms": 100})
    assert_status(r, 504, "M_NOT_YET_UPLOADED")
    path = f"/_matrix/media/v3/upload/{q(server)}/{q(media_id)}"
    r = await bob.req("PUT", path, data=b"not bob's", headers={"Content-Type": "text/plain"})
    assert_status(r, 403, "M_FORBIDDEN")
    r = await alice.req("PUT", path, data=b"async content", headers={"Content-Type": "text/plain"}, params={"filename": "a.txt"})
    assert_status(r, 200)
    r = await alice.req("PUT", path, data=b"again", headers={"Content-Type": "text/plain"})
    assert_status(r, 409, "M_CANNOT_OVERWRITE_MEDIA")
    resp = await alice.nio.download(mxc=mxc)
    assert isinstance(resp, DownloadResponse) and resp.body == b"async content", resp


async def test_TestRoomImageRoundtrip(alice, bob):
    """Complement: TestRoomImageRoundtrip (sytest: Can send image in room message, Can fetch images in room)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    image = png(64, 48)
    mxc = await nio_upload(alice, image, "image/png", "pic.png")
    await alice.send(room, "m.room.message", {"msgtype": "m.image", "body": "pic.png", "url": mxc})
    body = await bob.messages(room, limit=5)
    urls = [e["content"].get("url") for e in body["chunk"] if e["type"] == "m.room.message"]
    assert mxc in urls, body
    resp = await bob.nio.download(mxc=mxc)
    assert isinstance(resp, DownloadResponse) and resp.body == image, resp


async def test_media_download_safe_headers(alice):
    """Downloads carry the sandboxing headers; HTML is an attachment, never inline."""
    mxc = await nio_upload(alice, b"<script>alert(1)</script>", "text/html", "page.html")
    server, media_id = split(mxc)
    r = await alice.req("GET", f"{MEDIA_V1}/download/{q(server)}/{q(media_id)}")
    assert_status(r, 200)
    assert r.headers["Content-Disposition"] == "attachment; filename=page.html"
    assert r.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'; script-src 'none';")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


async def test_media_legacy_frozen_and_unauthenticated(alice, http):
    """Legacy /_matrix/media/v3/download does not serve media uploaded while legacy access is frozen
    (the default); the authenticated endpoint needs a token."""
    mxc = await nio_upload(alice, b"fresh", "text/plain", "fresh.txt")
    server, media_id = split(mxc)
    r = await http.request("GET", f"/_matrix/media/v3/download/{q(server)}/{q(media_id)}")
    assert_status(r, 404, "M_NOT_FOUND")
    r = await http.request("GET", f"{MEDIA_V1}/download/{q(server)}/{q(media_id)}")
    assert_status(r, 401, "M_MISSING_TOKEN")
