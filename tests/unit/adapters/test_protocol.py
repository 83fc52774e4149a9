"""The reference Protocol: configured field names, and malformed replies as countable reasons."""

from __future__ import annotations

import pytest

from loadtest.adapters.protocol import Protocol, ProtocolConfig, ProtocolError


class TestProtocol:
    def test_tick_fields_come_from_configuration(self) -> None:
        p = Protocol(ProtocolConfig(tick_field="n", timestamp_field="t", type_field="k", tick_type="frame"))
        assert p.parse_message('{"k": "frame", "n": 7, "t": 1.5, "ack": 3, "players": 2}') == ("tick", 7, 1.5, 3, 2)
        assert p.parse_message('{"k": "tick", "n": 7, "t": 1.5}')[0] == "other"

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("nope", "invalid_json"),
            ("[1]", "not_an_object"),
            ('{"type": "tick", "tick": "1", "ts": 1}', "bad_tick"),
            ('{"type": "tick", "tick": true, "ts": 1}', "bad_tick"),
            ('{"type": "tick", "tick": 1}', "bad_tick"),
        ],
    )
    def test_malformed_messages_raise_a_countable_reason(self, raw: str, reason: str) -> None:
        with pytest.raises(ProtocolError) as info:
            Protocol().parse_message(raw)
        assert info.value.reason == reason

    @pytest.mark.parametrize(
        ("body", "reason"), [([], "wrong_shape"), ({}, "missing_field"), ({"ticket": 5}, "missing_field")]
    )
    def test_join_replies_of_the_wrong_shape_are_protocol_errors(self, body: object, reason: str) -> None:
        with pytest.raises(ProtocolError) as info:
            Protocol().parse_join(body)
        assert info.value.reason == reason

    def test_input_message_is_valid_json_with_configured_names(self) -> None:
        import json

        p = Protocol(ProtocolConfig(type_field="op", input_type="move", seq_field="n"))
        assert json.loads(p.input_message(4, 0.5, -1)) == {"op": "move", "n": 4, "x": 0.5, "y": -1.0}

    def test_connect_url_escapes_the_ticket(self) -> None:
        from loadtest.adapters.protocol import JoinGrant

        url = Protocol(ProtocolConfig(ticket_param="seat")).connect_url("ws://h:1", JoinGrant("a+b/c", "R", 1))
        assert url == "ws://h:1/connect?seat=a%2Bb%2Fc"
