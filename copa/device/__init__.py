"""copa.device: the host side of copa's board protocol (see docs/protocol.md).

- ``copa.device.codec``: CRC-16/CCITT-FALSE, COBS and SipHash-2-4, pure Python.
- ``copa.device.protocol``: frames, commands, status codes, message builders/parsers and the
  pairing / challenge-response / MAC helpers.
- ``copa.device.client``: a small synchronous client over a pyserial port (HELLO with retry,
  request ids, pipelining, event collection).
- ``copa.device.targets``: start the firmware's host build, simavr Uno or QEMU STM32 on a pty
  (development and tests).

Nothing here imports pyserial at import time; ``Client.open`` imports it when called.
"""
