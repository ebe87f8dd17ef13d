"""Optional generative answers from any OpenAI-compatible chat-completions server.

The LLM only rewrites evidence the retriever already found, so the answer stays checkable:

1. **Grounded prompt** (`prompt`): the retrieved passages are numbered [1]..[n] and quoted
   inside `<passage>` delimiters within a cl100k token budget; a passage that does not fit
   whole is cut after its last whole sentence that fits, so every quote is still an exact
   `document.text[start:end]`.
2. **Validated citations** (`citations`): `<think>` reasoning is stripped; markers that point at
   no passage are removed and counted; the rest are renumbered 1..m in order of first appearance
   and each becomes a `Citation` with the exact span that was sent.
3. **One client** (`client`): `LlmClient.from_settings(settings)` holds one `httpx.Client`
   reused across questions; retries with backoff; the API key never leaks.
4. **Never worse than extractive** (`answer`): any failure returns the extractive answer with
   `fallback=True` and a short reason; nothing raises out of `stream_answer`.

`local` starts a bundled small model with llama.cpp (`rag llm-server`, optional extra).
"""

from rag.llm.answer import stream_answer, stream_llm_answer
from rag.llm.citations import CitationRewriter, ReasoningFilter
from rag.llm.client import LlmClient, LlmConfig, LLMFailure
from rag.llm.prompt import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    SYSTEM_PROMPT,
    PackedPassage,
    PromptTooLong,
    build_messages,
    pack_prompt,
    prompt_tokens,
)

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "REPLY_PRIMING_TOKENS",
    "SYSTEM_PROMPT",
    "CitationRewriter",
    "LLMFailure",
    "LlmClient",
    "LlmConfig",
    "PackedPassage",
    "PromptTooLong",
    "ReasoningFilter",
    "build_messages",
    "pack_prompt",
    "prompt_tokens",
    "stream_answer",
    "stream_llm_answer",
]
