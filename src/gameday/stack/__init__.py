"""The parts of the drill stack, each a real program the harness starts and removes."""
