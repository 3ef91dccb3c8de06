"""Views (Qt + pyvistaqt): linked 2D slice views and the 3D view, on a shared model.

- :class:`app.viewers.state.ViewerState` — volume, crosshair (LPS mm), window/level, overlay
  (``set_labels``, ``set_label_table`` for bit-field labels, ``labelsEdited`` after in-place
  edits) and ``set_threshold_preview(lower, upper)``.
- :class:`app.viewers.slice_view.SliceView` — one orientation; ``set_tool("stroke")`` hands
  left drags to editing tools through ``strokeStarted/strokeMoved/strokeEnded`` (LPS points);
  ``viewClicked`` gives seed clicks.
- :class:`app.viewers.view3d.View3D` — ``set_volume``, ``set_preset``, ``add_mesh(name, mesh,
  color, opacity, scalars)``, ``show_mask_surface``, ``set_clipping``, ``camera_preset``,
  ``frame_mesh``, ``screenshot``.
- :class:`app.viewers.layout.ViewArea` — the four-up / single layouts.
- :mod:`app.viewers.geometry` and :mod:`app.viewers.windowing` — the Qt-free maths.
"""
