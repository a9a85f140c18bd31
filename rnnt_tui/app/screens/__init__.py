"""The app's screens besides the main one: file picking, help, error details, the compute-unit sweep."""
