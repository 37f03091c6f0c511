"""Push rules, unread notification counts in /sync, /notifications and pushers.
Complement: TestPushRuleCacheHealth, TestPushSync, TestChangePasswordPushers, TestThreadedReceipts."""

from nio import (
    DeletePushRuleResponse,
    EnablePushRuleResponse,
    PushDontNotify,
    PushEventMatch,
    PushNotify,
    PushRuleKind,
    PushRulesEvent,
    PushSetTweak,
    SetPushRuleActionsResponse,
    SetPushRuleResponse,
    SyncResponse,
    UpdateReceiptMarkerResponse,
)

from helpers import CS, assert_status, q, wait_for
from test_account import pw_auth, uia_start

GATEWAY = "https://push.example.org/_matrix/push/v1/notify"


def pusher(pushkey, url=GATEWAY, **extra):
    body = {
        "kind": "http",
        "app_id": "org.example.conformance",
        "pushkey": pushkey,
        "app_display_name": "Conformance",
        "device_display_name": "Test device",
        "lang": "en",
        "data": {"url": url},
    }
    body.update(extra)
    return body


def rule_ids(ruleset, kind):
    return [r["rule_id"] for r in ruleset[kind]]


async def nio_rules(user, since=None):
    """The global push rules nio parsed from the account data of a /sync (None when absent)."""
    resp = await user.nio.sync(timeout=0, since=since, full_state=since is None)
    assert isinstance(resp, SyncResponse), resp
    for event in resp.account_data_events:
        if isinstance(event, PushRulesEvent):
            return event.global_rules, resp.next_batch
    return None, resp.next_batch


async def test_push_rules_default(alice):
    """sytest: Can fetch a user's pushrules
    The server-default rules of the spec in GET /pushrules/ and /pushrules/global/, and in the initial /sync."""
    all_rules = await alice.ok("GET", f"{CS}/pushrules/")
    rules = all_rules["global"]
    assert rule_ids(rules, "override")[0] == ".m.rule.master"
    for rule_id in [".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event", ".m.rule.is_user_mention"]:
        assert rule_id in rule_ids(rules, "override")
    for rule_id in [".m.rule.call", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"]:
        assert rule_id in rule_ids(rules, "underride")
    assert all(r["default"] for r in rules["override"] + rules["underride"])
    assert await alice.ok("GET", f"{CS}/pushrules/global/") == rules
    master = await alice.ok("GET", f"{CS}/pushrules/global/override/.m.rule.master")
    assert master["rule_id"] == ".m.rule.master" and master["enabled"] is False
    parsed, _ = await nio_rules(alice)
    assert parsed is not None and parsed.override[0].id == ".m.rule.master"


async def test_push_rule_put_and_delete(alice):
    """sytest: Can add a push rule; Can delete a push rule; Can add a push rule before/after another
    (nio.AsyncClient.set_pushrule, delete_pushrule)"""
    conditions = [PushEventMatch("content.body", "lunch")]
    for rule_id, before, after in [("one", None, None), ("two", None, None), ("three", None, "one")]:
        resp = await alice.nio.set_pushrule("global", PushRuleKind.override, rule_id, before=before, after=after,
                                            actions=[PushNotify()], conditions=conditions)
        assert isinstance(resp, SetPushRuleResponse), resp
    rules = (await alice.ok("GET", f"{CS}/pushrules/"))["global"]
    assert rule_ids(rules, "override")[:4] == [".m.rule.master", "two", "one", "three"]
    rule = await alice.ok("GET", f"{CS}/pushrules/global/override/one")
    assert rule["conditions"] == [{"kind": "event_match", "key": "content.body", "pattern": "lunch"}]
    assert rule["actions"] == ["notify"] and rule["default"] is False and rule["enabled"] is True

    resp = await alice.nio.set_pushrule("global", PushRuleKind.content, "cake", actions=[PushNotify()], pattern="cake")
    assert isinstance(resp, SetPushRuleResponse), resp
    assert (await alice.ok("GET", f"{CS}/pushrules/global/content/cake"))["pattern"] == "cake"

    resp = await alice.nio.delete_pushrule("global", PushRuleKind.override, "two")
    assert isinstance(resp, DeletePushRuleResponse), resp
    assert_status(await alice.req("GET", f"{CS}/pushrules/global/override/two"), 404, "M_NOT_FOUND")
    assert_status(await alice.req("DELETE", f"{CS}/pushrules/global/override/two"), 404, "M_NOT_FOUND")
    rules = (await alice.ok("GET", f"{CS}/pushrules/"))["global"]
    assert rule_ids(rules, "override")[:3] == [".m.rule.master", "one", "three"]


async def test_push_rule_errors(alice):
    """sytest: Trying to add push rule with invalid scope/kind/rule id fails; Trying to get push rules with unknown rule_id fails with 404
    Errors change nothing."""
    body = {"actions": ["notify"], "conditions": []}
    before = await alice.ok("GET", f"{CS}/pushrules/")
    assert_status(await alice.req("PUT", f"{CS}/pushrules/global/override/.m.rule.mine", json=body), 400, "M_INVALID_PARAM")
    assert_status(await alice.req("PUT", f"{CS}/pushrules/global/override/x", params={"before": "nope"}, json=body), 400, "M_UNKNOWN")
    assert_status(await alice.req("PUT", f"{CS}/pushrules/global/override/x", params={"after": ".m.rule.master"}, json=body), 400, "M_UNKNOWN")
    assert_status(await alice.req("DELETE", f"{CS}/pushrules/global/override/.m.rule.master"), 400, "M_INVALID_PARAM")
    assert_status(await alice.req("GET", f"{CS}/pushrules/global/override/nope"), 404, "M_NOT_FOUND")
    assert_status(await alice.req("GET", f"{CS}/pushrules/global/room/nope/enabled"), 404, "M_NOT_FOUND")
    assert_status(await alice.req("PUT", f"{CS}/pushrules/global/sender/nope/actions", json={"actions": []}), 404, "M_NOT_FOUND")
    assert await alice.ok("GET", f"{CS}/pushrules/") == before


async def test_push_rule_enabled(alice):
    """sytest: Can disable a push rule; Can enable a push rule; Can check if a push rule is enabled
    (nio.AsyncClient.enable_pushrule)"""
    resp = await alice.nio.enable_pushrule("global", PushRuleKind.override, ".m.rule.suppress_notices", False)
    assert isinstance(resp, EnablePushRuleResponse), resp
    r = await alice.ok("GET", f"{CS}/pushrules/global/override/.m.rule.suppress_notices/enabled")
    assert r == {"enabled": False}
    await alice.nio.set_pushrule("global", PushRuleKind.underride, "mine", actions=[PushNotify()], conditions=[])
    await alice.nio.enable_pushrule("global", PushRuleKind.underride, "mine", False)
    assert (await alice.ok("GET", f"{CS}/pushrules/global/underride/mine/enabled"))["enabled"] is False
    # Replacing a rule keeps whether it is enabled.
    await alice.nio.set_pushrule("global", PushRuleKind.underride, "mine", actions=[], conditions=[])
    assert (await alice.ok("GET", f"{CS}/pushrules/global/underride/mine/enabled"))["enabled"] is False


async def test_push_rule_actions(alice):
    """sytest: Can change the actions of default rules; Can change the actions of a user specified rule
    (nio.AsyncClient.set_pushrule_actions)"""
    resp = await alice.nio.set_pushrule_actions("global", PushRuleKind.underride, ".m.rule.message",
                                                [PushNotify(), PushSetTweak("sound", "bing")])
    assert isinstance(resp, SetPushRuleActionsResponse), resp
    r = await alice.ok("GET", f"{CS}/pushrules/global/underride/.m.rule.message/actions")
    assert r == {"actions": ["notify", {"set_tweak": "sound", "value": "bing"}]}
    await alice.nio.set_pushrule_actions("global", PushRuleKind.underride, ".m.rule.message", [PushDontNotify()])
    r = await alice.ok("GET", f"{CS}/pushrules/global/underride/.m.rule.message/actions")
    assert r["actions"] in (["dont_notify"], [])


async def test_TestPushRuleCacheHealth(alice):
    """Complement: TestPushRuleCacheHealth
    sytest: Getting push rules doesn't corrupt the cache SYN-390"""
    await alice.nio.set_pushrule("global", PushRuleKind.sender, alice.user_id, actions=[PushDontNotify()])
    for _ in range(3):
        rule = await alice.ok("GET", f"{CS}/pushrules/global/sender/{q(alice.user_id)}")
        assert rule["rule_id"] == alice.user_id and rule["enabled"] is True
        all_rules = await alice.ok("GET", f"{CS}/pushrules/")
        assert alice.user_id in rule_ids(all_rules["global"], "sender")


async def test_TestPushSync(alice):
    """Complement: TestPushSync
    sytest: Push rules come down in an initial /sync; Adding/deleting/enabling a push rule wakes up an incremental /sync"""
    _, since = await nio_rules(alice)
    await alice.nio.set_pushrule("global", PushRuleKind.room, "!room:example.org", actions=[PushNotify()])
    body, rules = await alice.sync_until(
        lambda b: next((e["content"]["global"] for e in b["account_data"].get("events", []) if e["type"] == "m.push_rules"), None),
        since=since,
        what="the new room rule in m.push_rules",
    )
    assert "!room:example.org" in rule_ids(rules, "room")
    await alice.nio.enable_pushrule("global", PushRuleKind.room, "!room:example.org", False)
    _, rules = await alice.sync_until(
        lambda b: next((e["content"]["global"] for e in b["account_data"].get("events", []) if e["type"] == "m.push_rules"), None),
        since=body["next_batch"],
        what="the disabled room rule",
    )
    assert [r["enabled"] for r in rules["room"] if r["rule_id"] == "!room:example.org"] == [False]
    # nio parses what the server sends.
    parsed, _ = await nio_rules(alice)
    assert [r.id for r in parsed.room] == ["!room:example.org"]


def unread(resp, room):
    info = resp.rooms.join.get(room)
    if info is None or info.unread_notifications is None:
        return None
    return (info.unread_notifications.notification_count, info.unread_notifications.highlight_count)


async def test_unread_counts_in_sync(alice, bob):
    """sytest: Notifications can be viewed with GET /notifications; Unread notification counts in /sync reset by a read receipt
    (nio SyncResponse rooms.join[].unread_notifications, nio.AsyncClient.update_receipt_marker)"""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.send_text(room, "hello")
    mention = await alice.send(room, "m.room.message",
                               {"msgtype": "m.text", "body": f"hi {bob.user_id}", "m.mentions": {"user_ids": [bob.user_id]}})

    async def counts():
        resp = await bob.nio.sync(timeout=0, full_state=True)
        assert isinstance(resp, SyncResponse), resp
        return unread(resp, room)

    async def counts_are(want):
        got = await counts()
        return got == want

    await wait_for(lambda: counts_are((2, 1)), what="2 notifications, 1 highlight")
    listed = await bob.ok("GET", f"{CS}/notifications")
    assert [n["event"]["event_id"] for n in listed["notifications"]][0] == mention
    assert listed["notifications"][0]["read"] is False and listed["notifications"][0]["room_id"] == room
    highlights = await bob.ok("GET", f"{CS}/notifications", params={"only": "highlight"})
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [mention]

    resp = await bob.nio.update_receipt_marker(room, mention)
    assert isinstance(resp, UpdateReceiptMarkerResponse), resp
    await wait_for(lambda: counts_are((0, 0)), what="counts reset by the receipt")
    listed = await bob.ok("GET", f"{CS}/notifications")
    assert all(n["read"] for n in listed["notifications"])
    # The sender is never notified by their own events.
    resp = await alice.nio.sync(timeout=0, full_state=True)
    assert unread(resp, room) == (0, 0)


async def test_pushers_set_get_delete(alice):
    """sytest: Can set and get pushers; Can delete pushers; pushers/set errors (M_MISSING_PARAM, M_INVALID_PARAM)"""
    await alice.ok("POST", f"{CS}/pushers/set", json=pusher("key-1"))
    listed = await alice.ok("GET", f"{CS}/pushers")
    assert [p["pushkey"] for p in listed["pushers"]] == ["key-1"]
    assert listed["pushers"][0]["data"] == {"url": GATEWAY}
    body = pusher("key-2")
    del body["lang"]
    assert_status(await alice.req("POST", f"{CS}/pushers/set", json=body), 400, "M_MISSING_PARAM")
    assert_status(await alice.req("POST", f"{CS}/pushers/set", json=pusher("key-2", url="https://push.example.org/")), 400, "M_INVALID_PARAM")
    assert_status(await alice.req("POST", f"{CS}/pushers/set", json=pusher("key-2", data={})), 400, "M_MISSING_PARAM")
    await alice.ok("POST", f"{CS}/pushers/set", json={"kind": None, "app_id": "org.example.conformance", "pushkey": "key-1"})
    assert (await alice.ok("GET", f"{CS}/pushers"))["pushers"] == []


async def test_TestChangePasswordPushers(make_user):
    """Complement: TestChangePasswordPushers
    Complement: TestChangePasswordPushers/Pushers created with a different access token are deleted on password change
    Complement: TestChangePasswordPushers/Pushers created with the same access token are not deleted on password change"""
    alice = await make_user(password="old-password-1")
    other = await make_user.login(alice)
    await other.ok("POST", f"{CS}/pushers/set", json=pusher("other-device"))
    await alice.ok("POST", f"{CS}/pushers/set", json=pusher("this-device"))
    session = await uia_start(alice, "POST", f"{CS}/account/password", {"new_password": "new-password-2"})
    await alice.ok("POST", f"{CS}/account/password",
                   json={"new_password": "new-password-2", "auth": pw_auth(alice, "old-password-1", session)})
    listed = await alice.ok("GET", f"{CS}/pushers")
    assert [p["pushkey"] for p in listed["pushers"]] == ["this-device"]


async def test_TestThreadedReceipts(alice, bob):
    """Complement: TestThreadedReceipts
    sytest: Unread thread notification counts (unread_thread_notifications) reset by threaded receipts
    Messages in the main timeline and in a thread; threaded, main and unthreaded receipts reset what they cover."""
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    await alice.send_text(room, "first")
    root = await alice.send_text(room, "thread root")
    t1 = await alice.send(room, "m.room.message", {"msgtype": "m.text", "body": "in thread",
                                                    "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    await alice.send(room, "m.room.message", {"msgtype": "m.text", "body": f"in thread {bob.user_id}",
                                              "m.mentions": {"user_ids": [bob.user_id]},
                                              "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    m2 = await alice.send_text(room, "last")
    threaded = '{"room": {"timeline": {"unread_thread_notifications": true}}}'

    async def counts(filtered=True):
        body = await bob.sync(filter=threaded) if filtered else await bob.sync()
        r = body["rooms"]["join"].get(room, {})
        main = r.get("unread_notifications", {})
        threads = {k: (v.get("notification_count", 0), v.get("highlight_count", 0))
                   for k, v in r.get("unread_thread_notifications", {}).items()}
        return (main.get("notification_count", 0), main.get("highlight_count", 0)), threads

    async def counts_are(main, threads, filtered=True):
        got = await counts(filtered)
        return got == (main, threads)

    await wait_for(lambda: counts_are((3, 0), {root: (2, 1)}), what="main 3, thread 2 with a highlight")
    assert await counts(filtered=False) == ((5, 1), {})

    await bob.ok("POST", f"{CS}/rooms/{q(room)}/receipt/m.read/{q(t1)}", json={"thread_id": root})
    await wait_for(lambda: counts_are((3, 0), {root: (1, 1)}), what="the thread receipt resets its first event")
    await bob.ok("POST", f"{CS}/rooms/{q(room)}/receipt/m.read/{q(root)}", json={"thread_id": "main"})
    await wait_for(lambda: counts_are((1, 0), {root: (1, 1)}), what="the main receipt resets the main timeline up to the root")
    await bob.ok("POST", f"{CS}/rooms/{q(room)}/receipt/m.read/{q(m2)}", json={})
    await wait_for(lambda: counts_are((0, 0), {}), what="the unthreaded receipt resets everything")
