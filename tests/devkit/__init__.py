"""Development harness for boards (not part of the product package).

- ``devkit.client``: the firmware engineer's bare synchronous client (the conformance suite's and the
  bridge benchmark's baseline).
- ``devkit.relay``: a byte relay between copa and a board for fault injection and frame capture.
- ``devkit.targets``: start the firmware's host build, the simavr Uno or the QEMU STM32 on a pty.

Tests import it as ``devkit`` (pytest puts tests/ on sys.path); benchmarks put the repo root on
sys.path and import ``tests.devkit``. Nothing under copa/ imports it.
"""
