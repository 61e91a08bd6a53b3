# The C side of roipool (src/roipool/simd/, entered through simd/simd.h) as
# the compiled modules see it: the block a kernel reads, the active ISA's
# kernel table and the helpers around it. No Python objects; all nogil.

from libc.stdint cimport int32_t, int64_t, uint16_t

cdef extern from "simd/simd.h" nogil:
    ctypedef struct roipool_block_t:
        # element (h, w, c) at base[h * row_stride + w * col_stride + c]
        const void *base
        Py_ssize_t row_stride, col_stride
        Py_ssize_t W          # argmax of (h, w) is h * W + w
        Py_ssize_t channels
    # One table of kernels per ISA (simd/dispatch.h, ROIPOOL_KERNEL_ENTRIES:
    # an entry added there is declared here); every call goes through the
    # active one. res is in the storage type (uint16_t bits for
    # float16/bfloat16), init in the compute type.
    ctypedef struct roipool_kernels_t:
        const char *name
        void (*roi_max_f32)(const roipool_block_t *block, const Py_ssize_t *bounds,
                            Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                            float init, float *res, int32_t *ires, int32_t *idx) noexcept nogil
        void (*roi_max_f64)(const roipool_block_t *block, const Py_ssize_t *bounds,
                            Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                            double init, double *res, int32_t *ires, int64_t *idx) noexcept nogil
        void (*roi_max_f16)(const roipool_block_t *block, const Py_ssize_t *bounds,
                            Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                            float init, uint16_t *res, int32_t *ires, int32_t *idx) noexcept nogil
        void (*roi_max_bf16)(const roipool_block_t *block, const Py_ssize_t *bounds,
                             Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                             float init, uint16_t *res, int32_t *ires, int32_t *idx) noexcept nogil
        void (*transpose16)(const void *src, Py_ssize_t ss, Py_ssize_t nc, Py_ssize_t nbins,
                            Py_ssize_t ld, void *dst) noexcept nogil
        void (*transpose32)(const void *src, Py_ssize_t ss, Py_ssize_t nc, Py_ssize_t nbins,
                            Py_ssize_t ld, void *dst) noexcept nogil
        void (*stream32)(const void *src, Py_ssize_t n, void *dst) noexcept nogil
        # backward, float16/bfloat16 (simd/backward.inc.h)
        int (*widen_f16)(const uint16_t *src, Py_ssize_t n, float *dst) noexcept nogil
        int (*widen_bf16)(const uint16_t *src, Py_ssize_t n, float *dst) noexcept nogil
        int (*scatter_f16)(float *plane, const float *g, const int32_t *am, Py_ssize_t nc,
                           Py_ssize_t bins, Py_ssize_t HW, int g_nan) noexcept nogil
        int (*scatter_bf16)(float *plane, const float *g, const int32_t *am, Py_ssize_t nc,
                            Py_ssize_t bins, Py_ssize_t HW, int g_nan) noexcept nogil
        void (*narrow_f16)(const float *src, Py_ssize_t n, uint16_t *dst) noexcept nogil
        void (*narrow_bf16)(const float *src, Py_ssize_t n, uint16_t *dst) noexcept nogil
        # RoIAlign (simd/roi_align.inc.h): a ROI's bins from its sample table,
        # res in the storage type; the backward's adds into pixel-major planes
        void (*align_fwd_f32)(const void *base, Py_ssize_t cs, Py_ssize_t nc, Py_ssize_t c0,
                              const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                              float count, float rcount, int max_mode, float *res) noexcept nogil
        void (*align_fwd_f64)(const void *base, Py_ssize_t cs, Py_ssize_t nc, Py_ssize_t c0,
                              const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                              double count, double rcount, int max_mode,
                              double *res) noexcept nogil
        void (*align_fwd_f16)(const void *base, Py_ssize_t cs, Py_ssize_t nc, Py_ssize_t c0,
                              const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                              float count, float rcount, int max_mode,
                              uint16_t *res) noexcept nogil
        void (*align_fwd_bf16)(const void *base, Py_ssize_t cs, Py_ssize_t nc, Py_ssize_t c0,
                               const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                               float count, float rcount, int max_mode,
                               uint16_t *res) noexcept nogil
        void (*align_bwd_f32)(float *acc, Py_ssize_t nc, Py_ssize_t c0, const float *g,
                              const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                              float count, float rcount) noexcept nogil
        void (*align_bwd_f64)(double *acc, Py_ssize_t nc, Py_ssize_t c0, const double *g,
                              const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                              double count, double rcount) noexcept nogil
        void (*align_bwd_f16)(float *acc, Py_ssize_t nc, Py_ssize_t c0, const float *g,
                              const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                              float count, float rcount) noexcept nogil
        void (*align_bwd_bf16)(float *acc, Py_ssize_t nc, Py_ssize_t c0, const float *g,
                               const void *table, Py_ssize_t per_bin, Py_ssize_t nbins,
                               float count, float rcount) noexcept nogil
    # one RoIAlign sample (simd/ops_align.h)
    ctypedef struct roipool_f32_sample_t:
        int32_t pos[4]
        float w[4]
    ctypedef struct roipool_f64_sample_t:
        int32_t pos[4]
        double w[4]
    const roipool_kernels_t *roipool_kernels
    # the ISA ids 0 .. ROIPOOL_ISA_COUNT - 1 and their names (simd/dispatch.h,
    # ROIPOOL_ISAS), whether or not this build has their tables
    enum: ROIPOOL_ISA_COUNT
    const char roipool_isa_names[][16]
    void roipool_transpose64(const void *src, Py_ssize_t ss, Py_ssize_t nc, Py_ssize_t nbins,
                             Py_ssize_t ld, void *dst) noexcept
    void roipool_store_fence() noexcept
    int roipool_isa_supported(int level) noexcept
    int roipool_set_isa(int level) noexcept
    long roipool_l2_cache_bytes() noexcept
    float roipool_round_half(float x) noexcept
    float roipool_round_bf16(float x) noexcept
    void roipool_prefetch(const void *p) noexcept
