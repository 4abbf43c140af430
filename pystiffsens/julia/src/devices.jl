# Devices: "cpu" runs OrdinaryDiffEq with EnsembleThreads; "cuda" runs DiffEqGPU's
# EnsembleGPUKernel (one fused GPU kernel per ensemble, static-array states), loaded as
# the package extension PyStiffSensCUDAExt once CUDA and DiffEqGPU are imported. Both
# are weak dependencies: nothing installs them for CPU work, so they cannot constrain
# the CPU resolve (pystiffsens adds them with juliapkg on the first device="cuda" call).
#
# On "cuda" the solver is named by its DiffEqGPU kernel. DiffEqGPU's stiff kernels are
# GPURosenbrock23, GPURodas4, GPURodas5P, GPUKvaerno3 and GPUKvaerno5 (Utkarsh et al.,
# "Automated translation and accelerated solving of differential equations on multiple
# GPU platforms", CMAME 419, 2024). pystiffsens's catalog names a kernel (`solver.julia_gpu`,
# the name Python sends on "cuda") for Rodas4 and Rodas5P only, GPURodas4 and GPURodas5P, so
# only they run there. GPURosenbrock23 (the ode23s stages, DiffEqGPU
# src/ensemblegpukernel/perform_step/gpu_rosenbrock23_perform_step.jl) and GPUKvaerno5
# (gamma = 0.26, tableaus/kvaerno_tableaus.jl) are kernels of methods pystiffsens now has as
# well; they are not offered until the catalog names them and the extension's `KERNELS` builds
# them (read, not run: that their coefficients are OrdinaryDiffEq's).
# Gradients there are forward mode: ForwardDiff duals carried through the kernel, i.e.
# ForwardDiffSensitivity.

const DEVICES = ("cpu", "cuda")
const GPU_SOLVERS = ("GPURodas4", "GPURodas5P")
const GPU_SENSITIVITIES = ("ForwardDiffSensitivity",)

"""
    gpu_solve(prob, kernel; rtol, atol, dt, max_steps) -> Dict

Solve `prob` in the DiffEqGPU kernel named `kernel` (one of `GPU_SOLVERS`). Methods are
added by the CUDA extension.
"""
function gpu_solve end

"""
    gpu_gradient_ensemble(prob, P, kernel; rtol, atol, dt, max_steps) -> Vector{Dict}

Forward-mode gradients for the parameter rows of `P` in one launch of the DiffEqGPU kernel
named `kernel` (one of `GPU_SOLVERS`). Methods are added by the CUDA extension.
"""
function gpu_gradient_ensemble end

"""
    check_device(device, solver, sensitivity = nothing)

Throw unless `solver` (and `sensitivity`) can run on `device`, and, for "cuda", unless
the CUDA extension is loaded. On "cuda" `solver` names a DiffEqGPU kernel (`GPU_SOLVERS`:
"GPURodas4", "GPURodas5P"); on "cpu" an OrdinaryDiffEq algorithm ([`solver_names`](@ref)),
checked when it is built ([`algorithm`](@ref)).
"""
function check_device(device::AbstractString, solver::AbstractString, sensitivity = nothing)
    device in DEVICES || throw(ArgumentError("unknown device $(repr(device)); valid devices: $(join(DEVICES, ", "))"))
    device == "cuda" || return nothing
    if !(solver in GPU_SOLVERS)
        kernel = "GPU" * solver
        hint = kernel in GPU_SOLVERS ? " (the kernel of $solver is $(repr(kernel)))" : ""
        throw(
            ArgumentError(
                "solver $(repr(solver)) is not a DiffEqGPU kernel$hint; on device \"cuda\" use one of " *
                    "$(join(GPU_SOLVERS, ", ")) or run on device \"cpu\""
            )
        )
    end
    sensitivity === nothing || sensitivity in GPU_SENSITIVITIES || throw(
        ArgumentError(
            "sensitivity $(repr(sensitivity)) cannot run inside a DiffEqGPU kernel; on device " *
                "\"cuda\" use $(join(GPU_SENSITIVITIES, ", ")) or run on device \"cpu\""
        )
    )
    Base.get_extension(@__MODULE__, :PyStiffSensCUDAExt) === nothing && throw(
        ArgumentError(
            "device \"cuda\" needs CUDA.jl and DiffEqGPU.jl, which are not dependencies of PyStiffSens " *
                "(pystiffsens installs them on its first device=\"cuda\" call): add both to the active " *
                "environment and run `import CUDA, DiffEqGPU` first"
        )
    )
    return nothing
end
