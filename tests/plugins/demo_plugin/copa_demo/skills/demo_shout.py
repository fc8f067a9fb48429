from copa.skills import skill


@skill
def demo_shout(text: str) -> str:
    """Shout the text back."""
    return text.upper() + "!"
