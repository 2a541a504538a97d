"""`--compile`: the denoising loop's models (the UNet and every ControlNet) compiled per working shape.

On the CPU each (model, input shapes, dtype) is exported and compiled ahead of time into a package with frozen
weights (AOTInductor: constants folded, convolution and linear weights pre-packed for oneDNN), kept on disk under
modomo's cache and loaded back without tracing by later runs (`store`); a bounded number of shapes is held in
memory at once, the least recently used released (`held`); `auto` compiles a shape only when the images still
queued for it repay the compile (`policy`). The sampler calls the models through `denoisers`. On CUDA, `on` is
`torch.compile` of the modules in place (`compiling`), and `auto` is off.
"""
