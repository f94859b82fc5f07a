"""The stages of `forgetlab reproduce`, each an adapter from a part of forgetlab to a StageResult."""
