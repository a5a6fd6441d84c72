# Placeholder until the emulator's fixtures are written.
