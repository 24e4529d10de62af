"""Texts written for tui-gpt that ship with it (installed as `tui_gpt.sample_texts`)."""
