"""``python -m esp_forms.emulator [--host H] [--port P] [--demo] [--latency S]``."""

from esp_forms.emulator.cli import main

main()
