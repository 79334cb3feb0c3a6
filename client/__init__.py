"""batch-stt client: a daemon that leases audio, transcribes it with whisper.cpp and uploads the result."""

__version__ = "0.1.0"
