// RUN: the step's command runs in a real container (the build's network and resource options) on the stage's
// current image; its output streams into the build's, and its upper directory becomes the step's layer.

import { errorMessage, InvalidParameterError } from '../errors.js';
import { containerPaths } from '../containers/paths.js';
import type { ContainerConfigJson } from '../images/image-config.js';
import type { BuildRun } from './build-run.js';
import { BuildStepError } from './builder.js';
import type { Command } from './instructions.js';
import { copyConfig, shellOf, short, type State } from './run-config.js';

/** RUN: the command in a container on the stage's image, its upper directory committed as the step's layer. */
export async function runStep(run: BuildRun, state: State, c: Extract<Command, { kind: 'run' }>): Promise<void> {
  if (c.flagsUsed.length > 0) {
    throw new InvalidParameterError(`the --${c.flagsUsed[0] as string} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`);
  }
  if (!state.imageId) throw new InvalidParameterError('Please provide a source image with `from` prior to run');
  const rc = state.runConfig;
  const cmd = c.prependShell ? [...shellOf(rc), ...c.cmdLine] : [...c.cmdLine];
  const buildArgs = state.buildArgs.filterAllowed(rc.Env ?? []);
  let saveCmd = cmd;
  if (buildArgs.length > 0) {
    const kept = buildArgs.filter((e) => state.buildArgs.isReferencedOrNotBuiltin(e.split('=', 1)[0] as string)).sort();
    saveCmd = [`|${kept.length}`, ...kept, ...cmd];
  }
  const probeCfg: ContainerConfigJson = { ...copyConfig(rc), Cmd: saveCmd };
  if (saveCmd.length > 0) probeCfg.Entrypoint = null;
  if (run.probe(state, probeCfg)) return;

  const hc: Record<string, unknown> = {
    NetworkMode: run.o.networkMode === '' || run.o.networkMode === 'default' ? 'bridge' : run.o.networkMode,
    ...(run.o.shmSize ? { ShmSize: run.o.shmSize } : {}),
    ...(run.o.memory ? { Memory: run.o.memory } : {}),
    ...(run.o.memorySwap ? { MemorySwap: run.o.memorySwap } : {}),
    ...(run.o.cpuShares ? { CpuShares: run.o.cpuShares } : {}),
    ...(run.o.cpuPeriod ? { CpuPeriod: run.o.cpuPeriod } : {}),
    ...(run.o.cpuQuota ? { CpuQuota: run.o.cpuQuota } : {}),
    ...(run.o.cpuSetCpus ? { CpusetCpus: run.o.cpuSetCpus } : {}),
    ...(run.o.cpuSetMems ? { CpusetMems: run.o.cpuSetMems } : {}),
    ...(run.o.extraHosts.length > 0 ? { ExtraHosts: run.o.extraHosts } : {}),
  };
  const body = {
    ...copyConfig(rc),
    Image: state.imageId,
    Cmd: cmd,
    Env: [...(rc.Env ?? []), ...buildArgs],
    Entrypoint: [''],
    Healthcheck: { Test: ['NONE'] },
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: hc,
  };
  const { Id: id, Warnings: warnings } = await run.d.containers.create({ body: body as never });
  run.containers.add(id);
  for (const w of warnings) run.out(` ---> [Warning] ${w}\n`);
  run.out(` ---> Running in ${short(id)}\n`);
  const att = await run.d.containers.attach(id, { stdin: false, stdout: true, stderr: true });
  const onAbort = (): void => void run.d.containers.kill(id, 'SIGKILL').catch(() => undefined);
  run.signal.addEventListener('abort', onAbort);
  let exitCode: number;
  try {
    try {
      await run.d.containers.start(id);
    } catch (e) {
      att.handle.then((h) => h?.close(), () => undefined);
      throw new BuildStepError(`failed to start the RUN container: ${errorMessage(e)}`);
    }
    const h = await att.handle;
    if (h) {
      for await (const chunk of h.output as AsyncIterable<{ stream: 'stdout' | 'stderr'; data: Buffer }>) {
        const text = chunk.data.toString('utf8');
        run.out(chunk.stream === 'stderr' ? `\u001b[91m${text}\u001b[0m` : text);
      }
    }
    const w = await run.d.containers.wait(id, 'not-running').result;
    exitCode = w.StatusCode;
  } finally {
    run.signal.removeEventListener('abort', onAbort);
  }
  run.checkCancelled();
  if (exitCode !== 0) {
    throw new BuildStepError(`The command '${cmd.join(' ')}' returned a non-zero code: ${exitCode}`, exitCode);
  }
  const upper = containerPaths(run.d.dataRoot, id).upper;
  const layer = await run.commitLayer(state.chainId, upper);
  run.commitImage(state, probeCfg, layer, id);
  run.containers.delete(id);
  if (run.o.rm || run.o.forceRm) {
    await run.d.containers.remove(id, { force: true, removeVolumes: true });
    run.out(`Removing intermediate container ${short(id)}\n`);
  }
}
