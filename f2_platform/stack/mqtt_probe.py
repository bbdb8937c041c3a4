"""A minimal MQTT health probe: does the broker accept our credentials?"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt


def mqtt_answers(host: str, port: int, username: str, password: str, timeout: float = 3.0) -> bool:
    connected = threading.Event()
    result: list[bool] = []

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        result.append(not getattr(reason, "is_failure", True))
        connected.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except OSError:
        return False
    client.loop_start()
    try:
        connected.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return bool(result and result[0])
