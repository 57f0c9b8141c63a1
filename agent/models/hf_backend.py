"""Local MedGemma through transformers (multimodal and text-only), greedy or sampled, streamed or not."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

from chartwise.fhir.errors import ConfigError

from .base import Messages, ModelBackend, VisibleText, truncate_at_stop
from .budget import default_limits
from .config import BackendConfig
from .images import load_images
from .thinking import THOUGHT_END, THOUGHT_START, add_think_instruction, split_thoughts
from .types import Capabilities, Generation, Message, StreamChunk, Usage, as_messages

_TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>", "<eos>", "<bos>", "<pad>")


def apply_thinking(messages: list[Message], thinking: bool) -> list[Message]:
    """Add "think silently if needed" to the system prompt when thinking is on."""
    if not thinking:
        return messages
    if messages and messages[0].role == "system":
        return [messages[0].model_copy(update={"content": add_think_instruction(messages[0].content)}), *messages[1:]]
    return [Message(role="system", content=add_think_instruction(None)), *messages]


class TransformersBackend(ModelBackend):
    """MedGemma loaded with ``from_pretrained``. Use :meth:`load` (or ``load_backend``) to build one."""

    name = "transformers"

    def __init__(self, model: Any, processor: Any, config: BackendConfig, *, multimodal: bool) -> None:
        self.model = model
        self.processor = processor
        self.config = config
        self.model_id = config.model
        self.multimodal = multimodal
        self.tokenizer = processor.tokenizer if multimodal else processor
        self._lock = threading.Lock()
        specials = set(getattr(self.tokenizer, "all_special_tokens", []) or []) | set(_TURN_TOKENS)
        specials -= {THOUGHT_START, THOUGHT_END}
        self._special_re = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
        eos = model.generation_config.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        eot = self.tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(eot, int) and eot != self.tokenizer.unk_token_id:
            self._eos_ids.add(eot)
        ctx, out = default_limits(config.model)
        self._caps = Capabilities(
            vision=multimodal,
            max_context=min(config.max_context, ctx) if "medgemma" in config.model.lower() else config.max_context,
            max_output=config.max_output if config.max_output else out,
            native_tool_calls=False,
            thinking=config.thinking or "27b" in config.model.lower(),
        )

    @classmethod
    def load(cls, config: BackendConfig) -> TransformersBackend:
        from .loading import load_pretrained

        model, processor, multimodal = load_pretrained(config)
        return cls(model, processor, config, multimodal=multimodal)

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    # -- prompt building ------------------------------------------------------------------------
    def _template_messages(self, messages: list[Message]) -> tuple[list[dict[str, Any]], list[Any]]:
        images: list[Any] = []
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.images and not self.multimodal:
                raise ConfigError(f"model {self.model_id!r} is text-only and cannot read images: use a multimodal "
                                  f"MedGemma such as google/medgemma-27b-it or google/medgemma-4b-it")
            if self.multimodal:
                content = [{"type": "image"} for _ in m.images] + [{"type": "text", "text": m.content}]
                images.extend(m.images)
            else:
                content = m.content
            out.append({"role": m.role, "content": content})
        return out, images

    def render_prompt(self, messages: Messages) -> tuple[str, list[Any]]:
        """The chat-template text (with ``<start_of_image>`` placeholders) and the raw images, in order."""
        msgs = apply_thinking(as_messages(messages), self.config.thinking and self._caps.thinking)
        chat, images = self._template_messages(msgs)
        text = self.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        return text, images

    def _inputs(self, messages: list[Message]) -> Any:
        text, raw_images = self.render_prompt(messages)
        if self.multimodal:
            pil = load_images(raw_images, max_side=self.config.image_max_side)
            inputs = self.processor(text=text, images=pil or None, return_tensors="pt", add_special_tokens=False)
        else:
            inputs = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        device = getattr(self.model, "device", None)
        inputs = inputs.to(device) if device is not None else inputs
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def _gen_kwargs(self, max_new_tokens: int, temperature: float, stop: list[str]) -> dict[str, Any]:
        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kw.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        return kw

    def clean(self, raw: str) -> tuple[str, str]:
        """Remove thoughts and chat special tokens from decoded text; return (visible, thoughts)."""
        visible, thoughts = split_thoughts(raw)
        return self._special_re.sub("", visible), thoughts

    # -- generation -----------------------------------------------------------------------------
    def _generate(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                  stop: list[str]) -> Generation:
        import torch

        inputs = self._inputs(messages)
        n_prompt = int(inputs["input_ids"].shape[1])
        with self._lock, torch.inference_mode():
            out = self.model.generate(**inputs, **self._gen_kwargs(max_new_tokens, temperature, stop))
        new = out[0][n_prompt:].tolist()
        raw = self.tokenizer.decode(new, skip_special_tokens=False)
        text, thoughts = self.clean(raw)
        text, stopped = truncate_at_stop(text, stop)
        ended = stopped or (bool(new) and new[-1] in self._eos_ids) or len(new) < max_new_tokens
        return Generation(text=text.strip(), usage=Usage(prompt_tokens=n_prompt, completion_tokens=len(new)),
                          finish_reason="stop" if ended else "length", model=self.model_id, thoughts=thoughts or None)

    def _stream(self, messages: list[Message], *, max_new_tokens: int, temperature: float,
                stop: list[str]) -> Iterator[StreamChunk]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        n_prompt = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=False,
                                        timeout=max(60.0, self.config.timeout_s))
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    result["out"] = self.model.generate(**inputs, streamer=streamer,
                                                        **self._gen_kwargs(max_new_tokens, temperature, stop))
            except BaseException as exc:  # surfaced in the consumer
                result["error"] = exc
                streamer.end()

        def chunks() -> Iterator[StreamChunk]:
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            view = VisibleText(stop)
            for piece in streamer:
                visible = view.feed(self._special_re.sub("", piece))
                if visible:
                    yield StreamChunk(text=visible)
            thread.join()
            if "error" in result:
                raise result["error"]
            new = result["out"][0][n_prompt:].tolist()
            ended = view.stopped or (bool(new) and new[-1] in self._eos_ids) or len(new) < max_new_tokens
            yield StreamChunk(text=view.tail(), usage=Usage(prompt_tokens=n_prompt, completion_tokens=len(new)),
                              finish_reason="stop" if ended else "length")

        return chunks()

    # -- tokens ---------------------------------------------------------------------------------
    def count_tokens(self, text_or_messages: Messages) -> int:
        if isinstance(text_or_messages, str):
            return len(self.tokenizer(text_or_messages, add_special_tokens=False)["input_ids"])
        text, images = self.render_prompt(text_or_messages)
        if self.multimodal and images:
            text = text.replace(self.processor.boi_token, self.processor.full_image_sequence)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        self.model = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
