"""Without their C libraries (an installation that could not compile them) the processor's frame path and the
sink's formatter still work, on the pure-Python path, and report that they do (NATIVE is what the daemons log
at start and show in /healthz). Run in a fresh interpreter where the two extension modules cannot import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.deploy.support import REPO

PROBE = textwrap.dedent(
    """
    import json, struct, sys
    sys.modules["streaming.decoding._frame_records"] = None  # import fails as if the library were not built
    sys.modules["streaming.sink._copy_rows"] = None
    from streaming.decoding import native
    from streaming.decoding.payload import Payload
    from streaming.decoding.topology import FRAME_CHECK_NONE, Datapoint, WiredDevice
    from streaming.mqtt.topic import parse_topic
    from streaming.sink import rows

    device = WiredDevice(7, "dev", 1, "t", FRAME_CHECK_NONE, (Datapoint(101, "p0", "Int16", 3, 2, 2, "u"),))
    topic = parse_topic("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1")
    records = native.frame_records(topic, Payload(1_772_359_200_000_000, "01 03 02 F6 D0", {}), device)
    value = records[0][1]
    print(json.dumps({
        "frames_native": native.NATIVE,
        "records": [[key.decode(), value.decode()] for key, value in records],
        "rows_native": rows.NATIVE,
        "copy_binary": rows.native_copy_binary([value]),
        "parsed": list(rows.parse_record(value)[1:]),
    }))
    """
)


def test_without_the_libraries_both_hot_paths_run_in_python_and_say_so() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames_native"] is False and report["rows_native"] is False
    # 0xF6D0 is -2352 as Int16; two decimals make -23.52.
    expected = '{"timestamp": "2026-03-01T10:00:00.000000Z", "device_id": 7, "datapoint_id": 101, "value": -23.52}'
    assert report["records"] == [["7:101", expected]]
    assert report["copy_binary"] is None, "with no library every batch is parsed in Python"
    assert report["parsed"] == [7, 101, -23.52]
