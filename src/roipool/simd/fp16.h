/* float16 and bfloat16 scalar conversions and rounding. Rounding is the
 * "round to T" step of MXNet's half_t arithmetic (docs/semantics.md,
 * "Reduced precision"): the ROI geometry and the backward compute in
 * float32 and round every intermediate through roipool_round_half/_bf16.
 *
 * roipool_<type>_to_ct / _from_ct convert one storage element to the
 * compute type and back (identity for f32/f64). from_ct is applied only to
 * values that are exact in the storage type (data, sums already rounded,
 * -inf, 0), where it is exact; NaNs come out as NumPy (float16) and
 * ml_dtypes (bfloat16) convert them, so results match a float32 pass
 * followed by astype. */
#ifndef ROIPOOL_SIMD_FP16_H
#define ROIPOOL_SIMD_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t roipool_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float roipool_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* IEEE binary16 -> float32, exact (a NaN keeps its payload and sign). */
static inline float roipool_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return roipool_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2**-24, exact in float32 */
        float f = (float)man * 5.9604644775390625e-08f;
        return sign ? -f : f;
    }
    return roipool_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* float32 -> nearest binary16 bits (ties to even); a NaN keeps its sign and
 * the top of its payload, as NumPy converts it. */
static inline uint16_t roipool_float_to_half(float f)
{
    uint32_t u = roipool_f32_bits(f);
    uint32_t sign = u & 0x80000000u;
    uint32_t a = u & 0x7fffffffu;
    uint32_t h;
    if (a > 0x7f800000u) { /* NaN: never inf */
        h = 0x7c00u | ((a & 0x7fffffu) >> 13);
        if (h == 0x7c00u) h |= 1u;
    } else if (a >= 0x477ff000u) { /* >= 65520 rounds to inf */
        h = 0x7c00u;
    } else if (a < 0x38800000u) { /* below the smallest normal half: subnormal */
        /* a value of m * 2**-24 with m rounded to nearest even */
        float af = roipool_bits_f32(a);
        float m = af * 16777216.0f; /* exact scaling by 2**24 */
        /* round to nearest even integer via the float trick (m < 1024) */
        float r = (m + 8388608.0f) - 8388608.0f;
        h = (uint32_t)r;
    } else {
        uint32_t mant_odd = (a >> 13) & 1u;
        a += 0xfffu + mant_odd; /* ties to even */
        h = ((a - 0x38000000u) >> 13) & 0x7fffu;
    }
    return (uint16_t)((sign >> 16) | h);
}

/* float32 -> nearest binary16 (ties to even) -> float32; NaN unchanged.
 * Rounded in float32 itself (the backward rounds every add through this):
 * in the normal range, to 10 fraction bits; below it, to a multiple of
 * 2**-24 by adding and removing 0.75, whose float32 spacing is 2**-24. */
static inline float roipool_round_half(float f)
{
    const uint32_t u = roipool_f32_bits(f);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x38800000u) { /* >= 2**-14, the smallest normal half */
        if (a > 0x7f800000u) return f; /* NaN */
        a = (a + 0xfffu + ((a >> 13) & 1u)) & 0xffffe000u; /* ties to even */
        if (a > 0x477fe000u) a = 0x7f800000u;           /* beyond 65504: inf */
        return roipool_bits_f32((u & 0x80000000u) | a);
    }
    {
        const float r = (roipool_bits_f32(a) + 0.75f) - 0.75f;
        return roipool_bits_f32((u & 0x80000000u) | roipool_f32_bits(r));
    }
}

/* float32 -> nearest bfloat16 (ties to even) -> float32; NaN unchanged. */
static inline float roipool_round_bf16(float f)
{
    uint32_t u = roipool_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f;
    u += 0x7fffu + ((u >> 16) & 1u);
    return roipool_bits_f32(u & 0xffff0000u);
}

/* roipool_round_bf16 without the NaN test, for the backward's sums of two
 * bfloat16 values: there every NaN has its low 16 bits zero (a bfloat16
 * NaN, quieted by an add, or the default NaN), which the rounding keeps. */
static inline float roipool_round_bf16_sum(float f)
{
    uint32_t u = roipool_f32_bits(f);
    u += 0x7fffu + ((u >> 16) & 1u);
    return roipool_bits_f32(u & 0xffff0000u);
}

/* a + b, where a NaN a wins over a NaN b: the add of the backward for the
 * halves, whose operand order (x86 propagates the first NaN) the compiler
 * may swap once b is converted from its 16 bits. a + a is a, quieted. */
static inline float roipool_add_nan_first(float a, float b)
{
    float s = a + b;
    if (s != s && a != a) s = a + a;
    return s;
}

/* Bits of +inf: a storage value v is a NaN when (v & 0x7fff) exceeds them. */
enum { roipool_f16_inf_bits = 0x7c00, roipool_bf16_inf_bits = 0x7f80 };

static inline float roipool_f32_to_ct(float x) { return x; }
static inline float roipool_f32_from_ct(float x) { return x; }
static inline double roipool_f64_to_ct(double x) { return x; }
static inline double roipool_f64_from_ct(double x) { return x; }
static inline float roipool_f16_to_ct(uint16_t x) { return roipool_half_to_float(x); }
static inline uint16_t roipool_f16_from_ct(float x) { return roipool_float_to_half(x); }
static inline float roipool_bf16_to_ct(uint16_t x) { return roipool_bits_f32((uint32_t)x << 16); }
/* exact for bfloat16 values; a NaN becomes ml_dtypes' quiet NaN of its sign */
static inline uint16_t roipool_bf16_from_ct(float x)
{
    uint32_t u = roipool_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(((u >> 16) & 0x8000u) | 0x7fc0u);
    return (uint16_t)(u >> 16);
}

#endif /* ROIPOOL_SIMD_FP16_H */
