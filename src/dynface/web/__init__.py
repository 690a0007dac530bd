"""Local web app (`dynface serve`): upload photos, restore them, compare with a before/after slider.

`jobs` holds the server settings and runs one restoration job with the library (no Gradio);
`examples` degrades the shipped example faces at start-up (no Gradio); `page` builds the Gradio page around them; `serve` is the `dynface serve` command. Gradio is the
optional extra `web` (`pip install -e ".[web]"`); only `page` and `serve.cmd_serve` import it.
"""
