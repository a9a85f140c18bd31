"""The app's widgets: model and fuse-mode panels, runtime controls, pipeline strip, live tables, pictures,
transcripts, status line. Each shows core results it is handed; none calls the core."""
