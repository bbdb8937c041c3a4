"""Pure helpers of the local stack."""

from __future__ import annotations

import base64

from f2_platform.stack.kafka import kraft_cluster_id


def test_kraft_cluster_ids_never_look_like_options_and_decode_to_16_bytes() -> None:
    for _ in range(2000):
        cid = kraft_cluster_id()
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
