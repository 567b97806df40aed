"""What the bench scripts share."""


def first_tokens(runner, text: str, tokens: int) -> str:
    """The text cut after its first `tokens` tokens (by the runner's tokenizer), whole if shorter."""
    t = runner.tokenize(text)
    return text if len(t.input_ids) <= tokens else text[:t.offsets[tokens - 1][1]]
