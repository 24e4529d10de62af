"""The Textual app. It drives `tui_gpt.core` and is the only package that imports Textual."""
