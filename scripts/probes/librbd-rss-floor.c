/* The resident memory of a bare librbd client, to set the volume service's idle RSS
 * beside: a C program that loads librados and librbd, connects to the cluster the way
 * the volume service does (once per lane: twice), opens the pool and lists its images,
 * then idles. Nothing of ours runs in it. `scripts/bench.sh api` builds and runs it.
 *
 *   librbd-rss-floor CEPH_CONF POOL CONNECTIONS
 */
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            v = atol(line + strlen(key) + 1);
    if (f)
        fclose(f);
    return v;
}

static void report(const char *what) {
    printf("  %-34s %5.1f MB  (private %5.1f MB, file-backed code and data %5.1f MB)\n", what,
           kb("VmRSS") / 1024.0, kb("RssAnon") / 1024.0, kb("RssFile") / 1024.0);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CEPH_CONF POOL CONNECTIONS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]);
    report("librados + librbd loaded");
    for (int i = 0; i < n; i++) {
        rados_t c;
        rados_ioctx_t io;
        rbd_image_spec_t specs[64];
        size_t max = 64;
        if (rados_create(&c, "admin") || rados_conf_read_file(c, argv[1]) || rados_connect(c) ||
            rados_ioctx_create(c, argv[2], &io)) {
            fprintf(stderr, "cannot connect to %s pool %s\n", argv[1], argv[2]);
            return 1;
        }
        if (rbd_list2(io, specs, &max) == 0)
            rbd_image_spec_list_cleanup(specs, max);
    }
    sleep(2);
    char what[64];
    snprintf(what, sizeof what, "connected %d time%s, pool listed", n, n == 1 ? "" : "s");
    report(what);
    return 0;
}
