"""The HTTP routes, one router per area: questions, documents, index, ops (and OpenAI, MCP)."""
