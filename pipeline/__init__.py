"""Processing: download (yt-dlp), provenance (C2PA), frames (ffmpeg), hashing (PDQ), regions,
embedders, and the worker loop that moves queued videos from ``discovered`` to ``embedded``."""
