/*
 * Reading a file through a memory mapping can fault where read() would only
 * fail: when the file shrinks under the mapping, or the disk returns an
 * error, the kernel raises SIGBUS on the reading thread. memguard_run()
 * turns such a fault inside the function it calls into an error return, so
 * that a damaged or truncated image fails one operation instead of ending
 * the process.
 *
 * Each call makes sure a SIGBUS handler of this file is installed (one
 * installed since by someone else is replaced and kept). A SIGBUS that
 * happens outside memguard_run() (on any thread) goes to the handler that
 * was there before, or has its default effect.
 */
#ifndef HX_UTIL_MEMGUARD_H
#define HX_UTIL_MEMGUARD_H

/*
 * Calls fn(arg) on this thread. Returns 0 when it returns, or -EFAULT if a
 * SIGBUS interrupted it (fn is abandoned where it was: it must only read
 * memory, not hold locks or allocate). Calls may nest.
 */
int memguard_run(void (*fn)(void *arg), void *arg);

#endif
