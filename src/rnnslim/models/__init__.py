"""Reference model architectures (input encoder -> recurrent stack -> head)."""
