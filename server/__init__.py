"""batch-stt server: hands out audio files as leased tasks and stores transcripts."""
