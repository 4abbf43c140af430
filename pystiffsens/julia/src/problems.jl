# The built-in problems, one for one with `pystiffsens.problems`: same names, same
# parameters and defaults, same stiffness knobs, same default losses. Each docstring
# names the Python factory it mirrors; the sources are cited there.

"""Default loss: the sum of the last saved state."""
final_state_sum(ts, ys, p) = sum(ys[end])

"""
    Builtin(rhs, loss, knob, param_names, parts = nothing)

A registry entry: right-hand side, default loss, stiffness knob, the parameter names and,
for a problem pystiffsens can build in two parts (`split=True`), `(stiff, nonstiff)` whose
sum is `rhs`.
"""
struct Builtin{F, L, K, S}
    rhs::F
    loss::L
    knob::K
    param_names::Vector{Symbol}
    parts::S
end
Builtin(rhs, loss, knob, param_names) = Builtin(rhs, loss, knob, param_names, nothing)

"""
    builtin(name, params, u0, t_end; saveat = [t_end], split = false) -> StiffProblem

The built-in problem `name` with the named `params`, on `(0, t_end)`; with `split = true`
in its two parts (`Builtin.parts`).
"""
function builtin(name::AbstractString, params::NamedTuple, u0, t_end; saveat = [Float64(t_end)], split::Bool = false)
    entry = builtin_entry(name)
    Set(keys(params)) == Set(entry.param_names) || throw(
        ArgumentError("problem $(repr(name)) takes parameters $(entry.param_names), got $(collect(keys(params)))")
    )
    split && entry.parts === nothing &&
        throw(ArgumentError("problem $(repr(name)) has no split into a stiff and a non-stiff part"))
    p, lay = flatten(params)
    parts = split ? entry.parts : nothing
    return StiffProblem(name, entry.rhs, entry.loss, entry.knob, u0, (0.0, Float64(t_end)), saveat, p, lay; parts)
end

"""
    builtin_names() -> Vector{String}

Names of the built-in problems.
"""
builtin_names() = sort!(collect(keys(BUILTINS)))

function builtin_entry(name::AbstractString)
    haskey(BUILTINS, name) ||
        throw(ArgumentError("unknown problem $(repr(name)); valid names: $(join(builtin_names(), ", "))"))
    return BUILTINS[name]
end

# --- scalar test equations (pystiffsens/problems/scalar.py) ------------------------

dahlquist_rhs(u, p, t) = state_like(u, -p.lam * u[1])

"""Dahlquist's y' = -lam*y, y(0) = 1; knob `lam`; loss y(t_end). Mirrors `pss.problems.get("dahlquist")`."""
dahlquist(; lam = 10.0, t_end = 1.0) = builtin("dahlquist", (lam = lam,), [1.0], t_end)

function prothero_robinson_rhs(u, p, t)
    return state_like(u, -p.lam * (u[1] - sin(p.omega * t)) + p.omega * cos(p.omega * t))
end

"""
Prothero–Robinson y' = -lam (y - sin(omega t)) + omega cos(omega t), y(0) = 1; knob `lam`;
loss y(t_end). Prothero & Robinson, Math. Comp. 28 (1974). Mirrors
`pss.problems.get("prothero_robinson")`.
"""
function prothero_robinson(; lam = 10.0, omega = 1.0, t_end = 1.0)
    return builtin("prothero_robinson", (lam = lam, omega = omega), [1.0], t_end)
end

# --- linear slow/fast modes (pystiffsens/problems/linear.py) -----------------------

linear_modes_rhs(u, p, t) = state_like(u, -p.a * u[1] + p.c * u[2], -p.lam * u[2])

"""Slow mode y1' = -a y1 + c y2 fed by y2' = -lam y2, y(0) = (1, 1); knob `lam`; loss y1 + y2 at t_end."""
function linear_modes(; a = 1.0, c = 1.0, lam = 100.0, t_end = 1.0)
    return builtin("linear_modes", (a = a, c = c, lam = lam), [1.0, 1.0], t_end)
end

# --- chemical kinetics (pystiffsens/problems/chemistry.py) -------------------------

function robertson_rhs(u, p, t)
    r1 = p.k1 * u[1]
    r2 = p.k2 * u[2]^2
    r3 = p.k3 * u[2] * u[3]
    return state_like(u, -r1 + r3, r1 - r2 - r3, r2)
end

"""sum(y(T)) + 1e4*y2(T): the conserved sum alone has zero sensitivity."""
robertson_loss(ts, ys, p) = sum(ys[end]) + 1.0e4 * ys[end][2]

"""
Robertson's reaction (ROBER); knob `k2`; loss y1 + y2 + y3 + 1e4 y2 at t_end.
Hairer & Wanner II, Sect. IV.1.
"""
function robertson(; k1 = 0.04, k2 = 3.0e7, k3 = 1.0e4, t_end = 1.0e5)
    return builtin("robertson", (k1 = k1, k2 = k2, k3 = k3), [1.0, 0.0, 0.0], t_end)
end

const HIRES_RATES = [1.71, 0.43, 8.32, 0.0007, 8.75, 10.03, 0.035, 1.12, 1.745, 280.0, 0.69, 1.81]

function hires_rhs(u, p, t)
    c = p.k
    r = c[10] * u[6] * u[8]
    return state_like(
        u,
        -c[1] * u[1] + c[2] * u[2] + c[3] * u[3] + c[4],
        c[1] * u[1] - c[5] * u[2],
        -c[6] * u[3] + c[2] * u[4] + c[7] * u[5],
        c[3] * u[2] + c[1] * u[3] - c[8] * u[4],
        -c[9] * u[5] + c[2] * u[6] + c[2] * u[7],
        -r + c[11] * u[4] + c[1] * u[5] - c[2] * u[6] + c[11] * u[7],
        r - c[12] * u[7],
        -r + c[12] * u[7],
    )
end

function hires_knob(params, s)
    k = collect(Float64, params.k)
    k[10] = HIRES_RATES[10] * s
    return merge(params, (k = k,))
end

"""
HIRES (8 species); knob s sets the y6*y8 rate to 280 s; loss sum of y(t_end).
Schäfer (1975); Hairer & Wanner II, Sect. IV.10.
"""
function hires(; t_end = 321.8122)
    u0 = zeros(8)
    u0[1], u0[8] = 1.0, 0.0057
    return builtin("hires", (k = copy(HIRES_RATES),), u0, t_end)
end

const POLLUTION_RATES = [
    0.35, 26.6, 1.23e4, 8.6e-4, 8.2e-4, 1.5e4, 1.3e-4, 2.4e4, 1.65e4, 9.0e3,
    2.2e-2, 1.2e4, 1.88, 1.63e4, 4.8e6, 3.5e-4, 1.75e-2, 1.0e8, 4.44e11, 1.24e3,
    2.1, 5.78, 4.74e-2, 1.78e3, 3.12,
]

function pollution_rhs(u, p, t)
    k = p.k
    r1 = k[1] * u[1]
    r2 = k[2] * u[2] * u[4]
    r3 = k[3] * u[5] * u[2]
    r4 = k[4] * u[7]
    r5 = k[5] * u[7]
    r6 = k[6] * u[7] * u[6]
    r7 = k[7] * u[9]
    r8 = k[8] * u[9] * u[6]
    r9 = k[9] * u[11] * u[2]
    r10 = k[10] * u[11] * u[1]
    r11 = k[11] * u[13]
    r12 = k[12] * u[10] * u[2]
    r13 = k[13] * u[14]
    r14 = k[14] * u[1] * u[6]
    r15 = k[15] * u[3]
    r16 = k[16] * u[4]
    r17 = k[17] * u[4]
    r18 = k[18] * u[16]
    r19 = k[19] * u[16]
    r20 = k[20] * u[17] * u[6]
    r21 = k[21] * u[19]
    r22 = k[22] * u[19]
    r23 = k[23] * u[1] * u[4]
    r24 = k[24] * u[19] * u[1]
    r25 = k[25] * u[20]
    return state_like(
        u,
        -r1 - r10 - r14 - r23 - r24 + r2 + r3 + r9 + r11 + r12 + r22 + r25,
        -r2 - r3 - r9 - r12 + r1 + r21,
        -r15 + r1 + r17 + r19 + r22,
        -r2 - r16 - r17 - r23 + r15,
        -r3 + 2 * r4 + r6 + r7 + r13 + r20,
        -r6 - r8 - r14 - r20 + r3 + 2 * r18,
        -r4 - r5 - r6 + r13,
        r4 + r5 + r6 + r7,
        -r7 - r8,
        -r12 + r7 + r9,
        -r9 - r10 + r8 + r11,
        r9,
        -r11 + r10,
        -r13 + r12,
        r14,
        -r18 - r19 + r16,
        -r20,
        r20,
        -r21 - r22 - r24 + r23 + r25,
        -r25 + r24,
    )
end

function pollution_knob(params, s)
    fast = POLLUTION_RATES .> 1.0e3
    return merge(params, (k = ifelse.(fast, POLLUTION_RATES .* s, collect(Float64, params.k)),))
end

"""
POLLU (20 species, 25 reactions); knob s scales every rate constant above 1e3 by s; loss
sum of y(t_end). Verwer, SIAM J. Sci. Comput. 15 (1994).
"""
function pollution(; t_end = 60.0)
    u0 = zeros(20)
    u0[2], u0[4], u0[7], u0[8], u0[9], u0[17] = 0.2, 0.04, 0.1, 0.3, 0.01, 0.007
    return builtin("pollution", (k = copy(POLLUTION_RATES),), u0, t_end)
end

# --- oscillator (pystiffsens/problems/oscillators.py) -----------------------------

van_der_pol_rhs(u, p, t) = state_like(u, u[2], p.mu * ((1 - u[1]^2) * u[2] - u[1]))

"""Van der Pol y1' = y2, y2' = mu((1 - y1^2) y2 - y1), y(0) = (2, 0); knob `mu`; loss y1 + y2 at t_end."""
van_der_pol(; mu = 1.0e3, t_end = 2.0) = builtin("van_der_pol", (mu = mu,), [2.0, 0.0], t_end)

# --- stiff neural ODE (pystiffsens/problems/neural.py) ----------------------------

"""The known linear part -diag(lam_slow, lam_fast) y: stiff (`_linear` in neural.py)."""
stiff_neural_ode_stiff(u, p, t) = -state_like(u, p.lam_slow, p.lam_fast) .* u

"""The network W2 tanh(W1 y + b1) + b2: non-stiff (`_network` in neural.py)."""
stiff_neural_ode_nonstiff(u, p, t) = p.W2 * tanh.(p.W1 * u .+ p.b1) .+ p.b2

stiff_neural_ode_rhs(u, p, t) = stiff_neural_ode_stiff(u, p, t) .+ stiff_neural_ode_nonstiff(u, p, t)

"""
    stiff_neural_ode(; W1, b1, W2, b2, lam_fast = 100.0, lam_slow = 1.0, t_end = 1.0)

y' = -diag(lam_slow, lam_fast) y + W2 tanh(W1 y + b1) + b2, y(0) = (1, 1); knob
`lam_fast`; loss y1 + y2 at t_end. The weights are arguments: pystiffsens draws them
with a JAX PRNG key (`pss.problems.get("stiff_neural_ode", seed=...)`) and passes them.
With `split = true` (pystiffsens's `split=True`) it comes in two parts: the linear part
stiff, the network non-stiff, so that KenCarp4 takes the network explicitly.
"""
function stiff_neural_ode(; W1, b1, W2, b2, lam_fast = 100.0, lam_slow = 1.0, t_end = 1.0, split = false)
    params = (lam_slow = lam_slow, lam_fast = lam_fast, W1 = W1, b1 = b1, W2 = W2, b2 = b2)
    return builtin("stiff_neural_ode", params, [1.0, 1.0], t_end; split)
end

const BUILTINS = Dict{String, Builtin}(
    "dahlquist" => Builtin(dahlquist_rhs, final_state_sum, :lam, [:lam]),
    "prothero_robinson" => Builtin(prothero_robinson_rhs, final_state_sum, :lam, [:lam, :omega]),
    "linear_modes" => Builtin(linear_modes_rhs, final_state_sum, :lam, [:a, :c, :lam]),
    "robertson" => Builtin(robertson_rhs, robertson_loss, :k2, [:k1, :k2, :k3]),
    "hires" => Builtin(hires_rhs, final_state_sum, hires_knob, [:k]),
    "pollution" => Builtin(pollution_rhs, final_state_sum, pollution_knob, [:k]),
    "van_der_pol" => Builtin(van_der_pol_rhs, final_state_sum, :mu, [:mu]),
    "stiff_neural_ode" => Builtin(
        stiff_neural_ode_rhs, final_state_sum, :lam_fast, [:lam_slow, :lam_fast, :W1, :b1, :W2, :b2],
        (stiff_neural_ode_stiff, stiff_neural_ode_nonstiff),
    ),
)
