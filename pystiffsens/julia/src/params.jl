# Named parameters stored as one flat vector.
#
# SciMLSensitivity differentiates with respect to `prob.p`, which must be an
# AbstractVector for every adjoint; right-hand sides read better with names. A
# layout maps each name to a slice of the flat vector, and `unflatten` turns the
# vector back into a NamedTuple inside the right-hand side, so the same code runs
# on plain, dual, tracked and static (GPU kernel) vectors.

"""
    Field{O, S}

Where one named parameter lives in the flat vector: it starts after `O` entries and
has shape `S` (`()` for a scalar; arrays are stored column-major, as `vec` does).
Offset and shape are type parameters so a layout is an isbits value that GPU kernels
can capture.
"""
struct Field{O, S} end

field_length(::Field{O, S}) where {O, S} = prod(S; init = 1)

read_field(::Field{O, ()}, p::AbstractVector) where {O} = p[O + 1]
read_field(::Field{O, ()}, p::StaticVector) where {O} = p[O + 1]
read_field(::Field{O, S}, p::AbstractVector) where {O, S} = reshape(p[(O + 1):(O + prod(S))], S)
function read_field(::Field{O, S}, p::StaticVector) where {O, S}
    return SArray{Tuple{S...}}(ntuple(k -> p[O + k], Val(prod(S))))
end

"""
    layout(names, shapes) -> NamedTuple of Field

The layout of parameters `names` with array `shapes`, packed in the order given.
"""
function layout(names, shapes)
    length(names) == length(shapes) ||
        throw(ArgumentError("got $(length(names)) parameter names but $(length(shapes)) shapes"))
    offset = 0
    fields = Field[]
    for shape in shapes
        dims = Tuple(Int(d) for d in shape)
        push!(fields, Field{offset, dims}())
        offset += prod(dims; init = 1)
    end
    return NamedTuple{Tuple(Symbol.(String.(names)))}(Tuple(fields))
end

"""
    parameter_count(layout) -> Int

Length of the flat vector that `layout` describes.
"""
parameter_count(lay::NamedTuple) = sum(field_length, values(lay); init = 0)

"""
    unflatten(layout, p) -> NamedTuple

The named parameters held in the flat vector `p` (scalars as numbers, arrays
reshaped; static arrays when `p` is static).
"""
unflatten(lay::NamedTuple{names}, p) where {names} = NamedTuple{names}(map(f -> read_field(f, p), values(lay)))

"""
    flatten(params::NamedTuple) -> (p::Vector{Float64}, layout)

Pack named scalars and arrays into a flat vector and its layout.
"""
function flatten(params::NamedTuple)
    shapes = [size(v) for v in values(params)]
    p = reduce(vcat, [vec(collect(Float64, v)) for v in values(params)]; init = Float64[])
    return p, layout(collect(String.(keys(params))), shapes)
end

"""
    state_like(u, xs...)

The vector `(xs...)` in the container kind of the state `u`: an `SVector` when `u` is
static (GPU kernels), a `Vector` otherwise. Right-hand sides return through it so
that one definition serves every device and AD backend.
"""
state_like(::StaticVector, xs...) = SVector(xs...)
state_like(::AbstractVector, xs...) = [xs...]
