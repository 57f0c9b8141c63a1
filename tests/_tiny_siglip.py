"""A tiny random-weight SigLIP (vision + text towers) with a tokenizer trained offline, saved with
``save_pretrained`` in the layout of google/medsiglip-448 (SiglipModel + SiglipProcessor with the PIL
image processor), so it loads through exactly the MedSigLIP path (AutoModel + AutoProcessor)."""
from __future__ import annotations

import math
from pathlib import Path

_CORPUS = [
    "a chest X-ray showing pleural effusion", "a chest X-ray showing cardiomegaly", "a chest X-ray showing pneumothorax",
    "a chest X-ray showing no acute findings", "frontal chest film with effusion", "a dermatology photograph of melanoma",
    "a fundus photograph of diabetic retinopathy", "a histopathology image of tumor tissue", "a medical image showing",
    "lung nodule or mass consolidation pulmonary edema atelectasis pneumonia rib fracture support devices",
] * 10


def build_tiny_siglip(out: str | Path, *, image_size: int = 28, max_length: int = 16) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.processors import TemplateProcessing
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel, SiglipProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    out = Path(out)
    tok = Tokenizer(BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="▁", behavior="merged_with_previous")
    tok.decoder = decoders.Replace("▁", " ")
    tok.train_from_iterator(_CORPUS, trainer=BpeTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"],
                                                        show_progress=False))
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    tk = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                 model_max_length=max_length)
    torch.manual_seed(0)
    cfg = SiglipConfig(
        text_config=dict(vocab_size=len(tk), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=max_length, pad_token_id=tk.pad_token_id,
                         bos_token_id=tk.pad_token_id, eos_token_id=tk.eos_token_id, projection_size=32),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=image_size, patch_size=14),
    )
    model = SiglipModel(cfg).eval()
    with torch.no_grad():  # post_init zeroes these; give them SigLIP-like values
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-1.0)
    model.save_pretrained(out)
    ip = SiglipImageProcessorPil(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
                                 image_std=[0.5] * 3)
    SiglipProcessor(image_processor=ip, tokenizer=tk).save_pretrained(out)
    return out


if __name__ == "__main__":  # pragma: no cover - manual helper
    import sys
    import tempfile

    print(build_tiny_siglip(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()))
