"""recorder: per-track recordings without transcoding (docs/recording.md)."""
