/* Victim for the dlerror test (tests/e2e/test_dlcaller.py, case dlerror):
 * an error of dlopen stays for dlerror() to read while the C library loads
 * a module of its own (iconv_open loads a gconv module) and allocates in
 * between: nothing the shim does for new modules may call a dl* function,
 * whose success would clear the error.
 *
 * Exits 0 when dlerror() still has the message, 1 when it was cleared, 2 if
 * the setup failed (the dlopen succeeded, iconv_open failed). No stdio
 * before the check.
 */
#include <dlfcn.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    if (dlopen("/nonexistent/libmt_none.so", RTLD_NOW))
        return 2;
    iconv_t cd = iconv_open("EUC-JP", "UTF-8");
    if (cd == (iconv_t)-1)
        return 2;
    free(malloc(100));
    const char *e = dlerror();
    if (!e || !strstr(e, "libmt_none.so"))
        return 1;
    iconv_close(cd);
    return 0;
}
