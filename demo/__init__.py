"""The Gradio demo: `demo.layout.build_demo` assembles the UI, `demo.callbacks` holds the plain functions it calls."""
