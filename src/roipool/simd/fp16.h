/* float16 and bfloat16 rounding: the "round to T" step of MXNet's half_t
 * arithmetic (docs/semantics.md, "Reduced precision"). The kernels compute
 * in float32 and round every intermediate through these. */
#ifndef ROIPOOL_SIMD_FP16_H
#define ROIPOOL_SIMD_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t roipool_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float roipool_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* IEEE binary16 -> float32, exact. */
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

/* float32 -> nearest binary16 (ties to even) -> float32. */
static inline float roipool_round_half(float f)
{
    uint32_t u = roipool_f32_bits(f);
    uint32_t sign = u & 0x80000000u;
    uint32_t a = u & 0x7fffffffu;
    uint32_t h;
    if (a >= 0x7f800000u) { /* inf or NaN */
        return f;
    }
    if (a >= 0x477ff000u) { /* >= 65520 rounds to inf */
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
    return roipool_half_to_float((uint16_t)((sign >> 16) | h));
}

/* float32 -> nearest bfloat16 (ties to even) -> float32. */
static inline float roipool_round_bf16(float f)
{
    uint32_t u = roipool_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f; /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return roipool_bits_f32(u & 0xffff0000u);
}

#endif /* ROIPOOL_SIMD_FP16_H */
