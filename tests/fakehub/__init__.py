"""A local fake of the Hugging Face Hub's file protocol, for model download tests."""
