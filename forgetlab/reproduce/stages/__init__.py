"""The stages of ``forgetlab reproduce``, one module per paper."""
