"""What `loadtest check` prints of a reply: keys and types with every secret masked, and the
`[protocol]` key to set with the candidates most like the field it lacks."""

from __future__ import annotations

from loadtest.cli.check import Step, Walk, field_hint, mask_url, report, shape

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwXzEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_shapes_show_keys_and_types_and_never_a_secret() -> None:
    text = shape({"access_token": JWT, "mode": "abc", "room": "r-1", "n": 3, "ok": True, "at": 1.5, "xs": [{"a": 1}]})
    assert "access_token: str (masked, " in text and JWT not in text
    assert 'mode: "abc"' in text and 'room: "r-1"' in text, "short values of non-secret keys are shown"
    assert "n: int" in text and "ok: bool" in text and "at: float" in text and "xs: array (1) of {a: int}" in text
    long_value = "x" * 40
    assert long_value not in shape({"opaque": long_value}), "a long value may be a credential by another name"
    assert mask_url("ws://h:1/connect?ticket=s3cr3t&room=r") == "/connect?ticket=...&room=..."


def test_a_missing_field_names_the_key_and_the_most_alike_candidates() -> None:
    reply = {"access_token": JWT, "user_id": "p1", "expires": 3600}
    hint = field_hint(reply, "token_field", "token")
    assert hint == (
        'no `token` in the reply; it has `access_token`, `user_id`: set `protocol.token_field = "access_token"`'
    )
    # Alike to the reference name too: whatever was configured, `token` is the candidate for a token.
    assert field_hint({"token": JWT, "id": "p"}, "token_field", "jwt").endswith('= "token"`')
    assert "nothing like it (keys: expires)" in field_hint({"expires": 3}, "token_field", "token")
    assert "not a JSON object" in field_hint(["x"], "ticket_field", "ticket")
    assert field_hint({"n": 1, "name": "x"}, "tick_field", "tick", int, "the tick messages").endswith('= "n"`')


def test_the_report_exit_code_is_the_flows() -> None:
    lines: list[str] = []
    works = Walk(steps=[Step("login", "POST /t", ok=True), Step("replay", "", ok=False)], ticks=5)
    assert report(works, "http://t", "reference", lines.append) == 0, "a replay accepted is reported, not the flow"
    stops = Walk(steps=[Step("login", "POST /t", ok=True), Step("join", "POST /j", hints=["set it"])])
    assert report(stops, "http://t", "reference", lines.append) == 1
    assert "         -> set it" in lines and any("the flow stops at join" in line for line in lines)
