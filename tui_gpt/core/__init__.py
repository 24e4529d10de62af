"""The engine of tui-gpt: tokenizers, data, model, sampling, training, runs.

Nothing under `tui_gpt.core` imports Textual, so the engine works headless, in scripts and
under torchrun; a test enforces it.
"""
