"""originality's engine: policies parsed, checked and evaluated over fact sheets."""
