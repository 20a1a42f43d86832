/* `berth-shim spawner`: forks shims for berthd from a small process. */
#ifndef BERTH_SPAWNER_H
#define BERTH_SPAWNER_H

typedef int (*shim_run_fn)(const char *mode, const char *plan_path);
/* Returns the spawner's exit status. */
int spawner_main(shim_run_fn run);

#endif
