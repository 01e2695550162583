/* Test driver for rnnscope.h: reads the probes of L layers from DIR/{h,dh,dh_raw}{l}.npy (each
 * (T, B, H), dh of the mean loss as rnnscope's engine gives them), writes their readings with
 * rs_put_probes to DIR/record.jsonl and writes h0 back as DIR/h0_copy.npy. Built with
 * RNNSCOPE_REAL double and float. usage: panel_probe DIR L */
#include <stdio.h>
#include <stdlib.h>

#include "rnnscope.h"

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    int L = atoi(argv[2]), ndim = 0;
    long shape[RS_NPY_MAXDIM];
    rs_real *probes[3][8];
    const char *names[3] = {"h", "dh", "dh_raw"};
    char path[4096];
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < L && l < 8; l++) {
            snprintf(path, sizeof path, "%s/%s%d.npy", argv[1], names[k], l);
            if (!(probes[k][l] = rs_npy_read(path, &ndim, shape)) || ndim != 3) return 1;
        }
    long rows = shape[0] * shape[1];
    snprintf(path, sizeof path, "%s/record.jsonl", argv[1]);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    rs_record r = rs_record_begin(f, 7);
    rs_put_probes(&r, L, (const rs_real *const *)probes[0], (const rs_real *const *)probes[1],
                  (const rs_real *const *)probes[2], rows, (int)shape[2], (double)rows,
                  RS_SAT_THRESHOLD);
    rs_put(&r, "not_a_number", 0.0 / 0.0);
    rs_put_text(&r, "note", "a \"quoted\" note");
    if (rs_record_end(&r) != 0 || fclose(f) != 0) return 1;
    snprintf(path, sizeof path, "%s/h0_copy.npy", argv[1]);
    return rs_npy_write(path, probes[0][0], ndim, shape) == 0 ? 0 : 1;
}
