"""Builders for tiny random-weight Gemma 3 checkpoints, made offline in seconds.

``build_tiny_text(dir)`` saves a ``Gemma3ForCausalLM`` + ``GemmaTokenizer`` (the layout of
google/medgemma-27b-text-it); ``build_tiny_multimodal(dir)`` saves a ``Gemma3ForConditionalGeneration``
+ ``Gemma3Processor`` with the PIL ``Gemma3ImageProcessorPil`` (the layout of google/medgemma-4b-it
and -27b-it). Both load through the same ``from_pretrained`` calls the MedGemma ids use.
"""
from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = [
    "<pad>", "<eos>", "<bos>", "<unk>", "<mask>",
    "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>",
    "<unused94>", "<unused95>",
]

# A Gemma-3-style chat template: system text folded into the first user turn, "assistant" -> "model",
# image items rendered as <start_of_image> (the processor expands them to soft tokens).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

_CORPUS = [
    "The patient is a 57 year old man with cardiomegaly on a PA chest radiograph.",
    "HbA1c was 7.9% on 2019-03-02 and is trending up [Observation/abc].",
    '{"tool": "search_notes", "arguments": {"query": "chest pain", "limit": 5}}',
    "No acute cardiopulmonary abnormality. Heart size is normal. Lungs are clear.",
    "Metformin 500 mg twice daily; lisinopril 10 mg daily; atorvastatin 40 mg nightly.",
] * 20


def _train_tokenizer(vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="▁", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    trainer = BpeTrainer(vocab_size=vocab_size + 256 + len(SPECIAL_TOKENS), special_tokens=SPECIAL_TOKENS + byte_tokens,
                         show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return tok


def build_tokenizer(out: Path):
    from transformers import GemmaTokenizer

    raw = _train_tokenizer()
    tk = GemmaTokenizer(
        tokenizer_object=raw,
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
        add_bos_token=False,
        chat_template=CHAT_TEMPLATE,
    )
    return tk


def _text_config_kwargs(tk) -> dict:
    return dict(
        vocab_size=len(tk), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=2048, sliding_window=64,
        query_pre_attn_scalar=32, pad_token_id=tk.pad_token_id, eos_token_id=[tk.eos_token_id,
        tk.convert_tokens_to_ids("<end_of_turn>")], bos_token_id=tk.bos_token_id,
    )


def build_tiny_text(out: str | Path) -> Path:
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig

    out = Path(out)
    torch.manual_seed(0)
    tk = build_tokenizer(out)
    cfg = Gemma3TextConfig(**_text_config_kwargs(tk))
    model = Gemma3ForCausalLM(cfg).eval()
    model.generation_config = GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                                               pad_token_id=cfg.pad_token_id)
    model.save_pretrained(out)
    tk.save_pretrained(out)
    return out


def build_tiny_multimodal(out: str | Path, *, mm_tokens_per_image: int = 4) -> Path:
    import torch
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, Gemma3TextConfig,
                              GenerationConfig, SiglipVisionConfig)
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    out = Path(out)
    torch.manual_seed(0)
    tk = build_tokenizer(out)
    text = Gemma3TextConfig(**_text_config_kwargs(tk))
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14, vision_use_head=False)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=mm_tokens_per_image,
                       boi_token_index=tk.convert_tokens_to_ids("<start_of_image>"),
                       eoi_token_index=tk.convert_tokens_to_ids("<end_of_image>"),
                       image_token_index=tk.convert_tokens_to_ids("<image_soft_token>"),
                       pad_token_id=tk.pad_token_id, eos_token_id=text.eos_token_id, bos_token_id=tk.bos_token_id)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(bos_token_id=tk.bos_token_id, eos_token_id=text.eos_token_id,
                                               pad_token_id=tk.pad_token_id)
    model.save_pretrained(out)
    ip = Gemma3ImageProcessorPil(size={"height": 28, "width": 28}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                 do_rescale=True, do_normalize=True, do_convert_rgb=True)
    proc = Gemma3Processor(image_processor=ip, tokenizer=tk, chat_template=CHAT_TEMPLATE,
                           image_seq_length=mm_tokens_per_image)
    proc.save_pretrained(out)
    return out


if __name__ == "__main__":  # pragma: no cover - manual helper
    import sys
    import tempfile

    base = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
    print(build_tiny_text(base / "text"), build_tiny_multimodal(base / "mm"))
    print(json.dumps(sorted(p.name for p in (base / "mm").iterdir())))
