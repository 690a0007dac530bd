"""The Gradio page of `dynface serve`: upload, examples, settings, progress, before/after sliders,
gallery, downloads.

`RestorePage.restore` is the event handler (a generator: it yields the outputs once, Gradio copies
them into its own cache, then the job folder is removed). `RestorePage.build` lays the page out.
Everything is local: analytics off, no share link, the theme's fonts are served by the app itself.
"""
from __future__ import annotations

import logging
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import: no phoning home

import atexit
import html
import shutil
import tempfile
from pathlib import Path

import gradio as gr

from dynface.pipeline import Restorer, RestoreOptions, method_steps
from dynface.web.examples import ATTRIBUTION, ATTRIBUTION_URL, Example, make_examples
from dynface.web.jobs import (INPUT_KINDS, METHODS, SAMPLING_METHODS, UPSCALES, JobError, JobResult, JobSettings,
                              ServerConfig, check_files, run_job)

log = logging.getLogger("dynface.web")
STATUS_ID = "dynface-status"
READY = "Ready: upload photos or click an example below them, then press Restore."
MODEL_CARD = "docs/model-card.md"
ALIGNED_KIND = next(k for k, v in INPUT_KINDS.items() if v)

CSS = """
.dynface-error { color: #991b1b; background: #fef2f2; border-left: 4px solid #dc2626; padding: 6px 10px;
                 border-radius: 4px; margin: 4px 0; }
.dynface-note { color: #78350f; background: #fffbeb; border-left: 4px solid #d97706; padding: 6px 10px;
                border-radius: 4px; margin: 4px 0; }
.dynface-done { color: #14532d; background: #f0fdf4; border-left: 4px solid #16a34a; padding: 6px 10px;
                border-radius: 4px; margin: 4px 0; }
.dynface-ready { color: #374151; padding: 6px 10px; margin: 4px 0; }
#dynface-status { min-height: 3.2em; }
#dynface-intro p { margin: 0.2em 0; }
#dynface-attribution, #dynface-attribution * { font-size: 12px !important; color: #6b7280; }
"""

#: what each network of a model set is, in plain words (manifest `files` keys)
NET_WORDS = {"rm": "a face restoration network", "prior": "a diffusion face prior that adds detail",
             "tm": "a blur-level estimator", "dgsa": "a per-pixel guidance map",
             "idm": "a second diffusion model conditioned on the photo (IDM)"}


def _number(value, what: str, kind=float):
    import math

    try:
        v = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise JobError(f"{what} must be a number, got {value!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise JobError(f"{what} must be a finite number, got {value!r}")
    return v


def _div(cls: str, text: str) -> str:
    return f'<div class="{cls}">{html.escape(text)}</div>'


def error_html(lines: list[str]) -> str:
    """Problems as styled error lines ('' when there are none)."""
    return "".join(_div("dynface-error", f"Error: {m}") for m in lines)


def status_html(result: JobResult | None, error: str | None = None, summary: str | None = None) -> str:
    """What the status box shows: a summary, then one styled line per problem and per note."""
    if error:
        return error_html([error])
    parts = []
    n_ok = len(result.photos)
    n_all = n_ok + len([m for m in result.messages if not m.startswith("the job ran past")])
    if n_ok:
        parts.append(_div("dynface-done", f"Restored {n_ok} of {max(n_all, n_ok)} photo(s) in {result.seconds:.1f} s"
                          + (f" ({summary})." if summary else ".")))
    parts.append(error_html(result.messages))
    parts += [_div("dynface-note", f"Note: {m}") for m in result.notes]
    return "".join(parts) or _div("dynface-note", "Nothing restored.")


def models_in_words(models) -> str:
    """The model set in plain words, read defensively from whatever the manifest holds."""
    manifest = getattr(models, "manifest", {}) or {}
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    present = [k for k in NET_WORDS if k in getattr(models, "nets", {}) or k in files]
    root = getattr(getattr(models, "root", None), "name", "") or ""
    which = "the CPU models built into dynface" if root == "embedded" else f"the model set '{root}'"
    size = manifest.get("size", getattr(models, "size", None))
    what = f"{which}, which work on faces of {size}×{size} pixels" if size else which
    nets = [NET_WORDS[k] for k in present]
    listed = (", ".join(nets[:-1]) + " and " + nets[-1]) if len(nets) > 1 else "".join(nets)
    return f"Models: {what}" + (f": {listed}." if listed else ".")


class RestorePage:
    """The page and its handler around one loaded model set; one job runs at a time."""

    def __init__(self, restorer: Restorer, base: RestoreOptions, cfg: ServerConfig = ServerConfig(),
                 work_root: str | os.PathLike | None = None, examples: bool = True):
        self.restorer, self.base, self.cfg = restorer, base, cfg
        self.work_root = Path(work_root) if work_root else None
        self.examples: list[Example] = []
        self.examples_dir: Path | None = None
        if examples:
            self.examples_dir = Path(tempfile.mkdtemp(prefix="dynface-web-examples-", dir=self.work_root))
            atexit.register(shutil.rmtree, self.examples_dir, True)
            try:
                self.examples = make_examples(self.examples_dir)
            except Exception:  # noqa: BLE001 - the page works without examples
                log.exception("could not make the example faces")

    def default_steps(self, method: str) -> int:
        """The Steps slider's value for a page method label: that method's default, within the slider."""
        return min(method_steps(self.restorer.models, METHODS.get(method, "dynface")), self.cfg.max_steps)

    def steps_for_method(self, method: str):
        """The Steps slider when the method changes: its default, greyed out where the method does not sample."""
        samples = METHODS.get(method, "dynface") in SAMPLING_METHODS
        return gr.update(value=self.default_steps(method), interactive=samples,
                         info="sampling steps: more is slower and a little finer" if samples else
                         f"{method} does not sample: one pass of the network, no steps")

    # ------------------------------------------------------------------ handlers
    def check_uploads(self, files) -> str:
        """Upload-time check of every file's header: styled error lines, '' when all are fine."""
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        problems = check_files(list(files or []), self.cfg)
        text = error_html(problems) + (_div("dynface-note", "Restore skips these files: remove them, or upload "
                                            "images (JPEG, PNG, WebP ...).") if problems else "")
        return gr.update(value=text, visible=bool(problems))

    def load_example(self, evt: gr.SelectData):
        """An example clicked: it becomes the upload, as an aligned face crop."""
        ex = self.examples[evt.index]
        return [str(ex.path)], ALIGNED_KIND

    def settings_from_page(self, input_kind, method, fidelity, upscale, steps, seed) -> JobSettings:
        if method not in METHODS:
            raise JobError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        if input_kind not in INPUT_KINDS:
            raise JobError(f"unknown input kind {input_kind!r}")
        fid, up = _number(fidelity, "fidelity"), _number(upscale, "upscale")
        steps_f, seed_f = _number(steps, "steps"), _number(seed, "seed")
        if steps_f != int(steps_f) or seed_f != int(seed_f):
            raise JobError("steps and seed must be whole numbers")
        return JobSettings(method=METHODS[method], aligned=INPUT_KINDS[input_kind], steps=int(steps_f),
                           seed=int(seed_f), fidelity=fid, upscale=up)

    def restore(self, files, input_kind, method, fidelity, upscale, steps, seed, progress=gr.Progress()):
        """Event handler: yields (status, *sliders, gallery, final PNGs, zip) once, then removes the job folder."""
        job_dir = Path(tempfile.mkdtemp(prefix="dynface-web-job-", dir=self.work_root))
        try:
            try:
                progress(0.0, desc="starting")
                settings = self.settings_from_page(input_kind, method, fidelity, upscale, steps, seed)
                if isinstance(files, (str, os.PathLike)):
                    files = [files]
                result = run_job(list(files or []), settings, self.restorer, self.base, self.cfg, job_dir,
                                 report=lambda f, text: progress(f, desc=text))
            except (JobError, ValueError) as e:
                yield self.outputs(None, str(e).splitlines()[0] if str(e) else type(e).__name__)
                return
            except Exception as e:  # noqa: BLE001 - the page shows one line, the log has the traceback
                log.exception("restore job failed")
                yield self.outputs(None, f"internal error ({type(e).__name__}); see the server log")
                return
            yield self.outputs(result, summary=settings.summary(method))
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def outputs(self, result: JobResult | None, error: str | None = None, summary: str | None = None) -> list:
        photos = result.photos if result else []
        sliders = [gr.update(value=(p.before, p.after), label=f"{p.name}: before | after", visible=True)
                   for p in photos]
        sliders += [gr.update(value=None, visible=False)] * (self.cfg.max_files - len(sliders))
        gallery = [(str(f), cap) for p in photos for f, cap in p.faces]
        finals = [str(p.final_png) for p in photos] or None
        zip_path = str(result.zip_path) if result and result.zip_path else None
        return [status_html(result, error, summary), *sliders, gallery or None, finals, zip_path]

    # ------------------------------------------------------------------ layout
    def intro(self) -> str:
        cfg = self.cfg
        return (
            "## dynface: restore blurry, noisy or low-resolution faces, on this computer\n"
            "Upload photos or click an example, then press **Restore**. dynface finds each face, aligns it, "
            "restores it with a face restoration network followed by a diffusion model that has learned what faces "
            "look like, and pastes it back into the photo; the slider compares before and after. Nothing leaves this "
            "computer. The models are small and run on a CPU: expect cleaner, softer faces, not new detail. "
            f"What the models are, how well they do and their limits: the model card, `{MODEL_CARD}` in the dynface "
            "repository.\n\n"
            f"{models_in_words(self.restorer.models)} At most {cfg.max_files} photos per job, "
            f"{cfg.max_upload_mb:g} MB and {cfg.max_pixels / 1e6:.0f} MP each; one job runs at a time, others wait.")

    def build(self) -> gr.Blocks:
        cfg = self.cfg
        first_method = next(iter(METHODS))
        with gr.Blocks(title="dynface: face restoration", analytics_enabled=False,
                       delete_cache=(max(60, cfg.cache_ttl_s // 4), cfg.cache_ttl_s)) as demo:
            gr.Markdown(self.intro(), elem_id="dynface-intro")
            with gr.Row():
                with gr.Column(scale=1):
                    files = gr.File(label="Photos", file_count="multiple", elem_id="dynface-upload", height=130)
                    upload_check = gr.HTML("", elem_id="dynface-upload-check", visible=False)
                    examples = None
                    if self.examples:
                        examples = gr.Gallery([(str(e.path), e.caption) for e in self.examples],
                                              label="Examples (click one to restore it)", columns=len(self.examples),
                                              height=150, allow_preview=False, interactive=False,
                                              object_fit="cover", buttons=[], elem_id="dynface-examples")
                        gr.Markdown(f"{ATTRIBUTION} [Licence and source]({ATTRIBUTION_URL}).",
                                    elem_id="dynface-attribution")
                    run = gr.Button("Restore", variant="primary", elem_id="dynface-run")
                    kind = gr.Radio(list(INPUT_KINDS), value=next(iter(INPUT_KINDS)), label="Input",
                                    elem_id="dynface-kind",
                                    info="Whole photos: faces are found, restored and pasted back. Aligned face "
                                         "crops: each file is one face already cut out and aligned like FFHQ "
                                         "(square, eyes level, face in the middle); nothing is detected.")
                    fidelity = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Fidelity to your photo",
                                         elem_id="dynface-fidelity",
                                         info="Higher = closer to your photo (as CodeFormer's w): that share of "
                                              "your photo is kept in each face. 0 = the restored face, "
                                              "1 = your photo unchanged.")
                    upscale = gr.Radio([(f"{u}×", u) for u in UPSCALES], value=UPSCALES[0], label="Upscale",
                                       elem_id="dynface-upscale",
                                       info="size of the result: faces are restored, the rest of the photo is "
                                            "resized (Lanczos)")
                    gr.Checkbox(False, label="Restore background", interactive=False, elem_id="dynface-background",
                                info="Not available: dynface has no model for backgrounds, only for faces. "
                                     "The background is kept as it is (resized when you upscale).")
                    with gr.Accordion("Method, steps, seed", open=False, elem_id="dynface-advanced"):
                        method = gr.Radio(list(METHODS), value=first_method, label="Method", elem_id="dynface-method",
                                          info="DynFaceRestore: the restoration network, then the diffusion model "
                                               "guided by it. RM only: the restoration network alone (fastest). "
                                               "IDM: a diffusion model conditioned on the photo (slower).")
                        steps = gr.Slider(1, cfg.max_steps, value=self.default_steps(first_method), step=1,
                                          label="Steps", elem_id="dynface-steps",
                                          info="sampling steps: more is slower and a little finer")
                        method.change(self.steps_for_method, method, steps)
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="dynface-seed",
                                         info="the sampler's random start: the same seed gives the same result")
                with gr.Column(scale=2):
                    status = gr.HTML(_div("dynface-ready", READY), elem_id=STATUS_ID, min_height=48)
                    sliders = [gr.ImageSlider(label=f"photo {i + 1}", visible=False, format="png", type="numpy",
                                              interactive=False, elem_id=f"dynface-slider-{i}",
                                              buttons=["fullscreen"])
                               for i in range(cfg.max_files)]
                    gallery = gr.Gallery(label="Restored faces (click to enlarge)", columns=4, height=320,
                                         object_fit="contain", preview=False, fit_columns=False, interactive=False,
                                         format="png", buttons=["download", "fullscreen"], elem_id="dynface-faces")
                    with gr.Row():
                        finals = gr.File(label="Final images (PNG)", file_count="multiple", interactive=False,
                                         elem_id="dynface-finals")
                        zip_file = gr.File(label="All outputs and report.json (zip)", interactive=False,
                                           elem_id="dynface-zip")
            inputs = [files, kind, method, fidelity, upscale, steps, seed]
            outputs = [status, *sliders, gallery, finals, zip_file]
            files.change(self.check_uploads, files, upload_check, show_progress="hidden")
            run.click(self.restore, inputs, outputs, concurrency_limit=1, show_progress_on=[status])
            if examples is not None:
                examples.select(self.load_example, None, [files, kind], show_progress="hidden").then(
                    self.restore, inputs, outputs, concurrency_limit=1, show_progress_on=[status])
        demo.queue(default_concurrency_limit=1, max_size=cfg.queue_size)
        return demo

    def launch(self, demo: gr.Blocks | None = None, quiet: bool = False):
        """Serve on cfg.host:cfg.port; blocks until the server stops (Ctrl+C)."""
        demo = demo or self.build()
        allowed = [str(self.examples_dir)] if self.examples_dir else None
        return demo.launch(server_name=self.cfg.host, server_port=self.cfg.port, share=False, inbrowser=False,
                           max_file_size=self.cfg.max_upload_bytes, show_error=False, ssr_mode=False,
                           mcp_server=False, pwa=False, quiet=quiet, footer_links=[], css=CSS,
                           allowed_paths=allowed)
