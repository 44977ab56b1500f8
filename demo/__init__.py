"""The Gradio demo: `demo.layout.build_demo` assembles the UI; the plain functions its events call live one
concept per module (model_registry, generation, action_input, input_checks, model_controls, model_card,
display_images, output_store, user_errors; reconstruct_tab and play_tab hold their tabs)."""
