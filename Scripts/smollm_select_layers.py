#!/usr/bin/env python3
"""One option per layer from a sensitivity sweep (Scripts/smollm-sensitivity.sh): the least
mean attention density for a budget on the added KL(exact || sparse), by dynamic programming
over the layers. KL increases of single layers are taken as additive (the sweep's all-layer
runs show how far they are); an option's KL is measured with every other layer dense (D).

  smollm_select_layers.py [--smooth-q] [--fixed-point-pv] SWEEPDIR[,SWEEPDIR...] BUDGET TUNED.json OUT.json
      BUDGET: nats per token over the all-dense settings (e.g. 0.004); several sweeps (other
      texts) are averaged, which makes the choice carry over to new text far better;
      --smooth-q: the sweeps ran with Q smoothing (SMOOTH_Q=1), so every layer of OUT gets
      "smooth_q": true; --fixed-point-pv: every layer of OUT gets "fixed_point_pv": true
      (SpargeParameters.fixedPointPV: faster P.V, about 1e-3 of the output, far below the
      INT8 score error the sweeps measure)
"""
import json, math, os, re, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm_layer_options import compose

def read(path):
    text = open(path).read()
    kl = float(re.search(r'kl vs exact: ([\d.e-]+)', text).group(1))
    density = [float(x) for x in re.search(r'density per layer: (.*)', text).group(1).split()]
    return kl, density

def main():
    args = sys.argv[1:]
    smooth_q = '--smooth-q' in args
    fixed_point_pv = '--fixed-point-pv' in args
    args = [a for a in args if a not in ('--smooth-q', '--fixed-point-pv')]
    if len(args) != 4:
        sys.exit(__doc__)
    sweep, budget, tuned, out = args[0], float(args[1]), args[2], args[3]
    if os.path.exists(out):
        sys.exit(f'{out} exists: name a new file')
    settings = json.load(open(tuned))
    n = len(settings['layers'])
    sweeps = sweep.split(',')
    def mean_read(name):
        runs = [read(os.path.join(d, name)) for d in sweeps]
        return sum(r[0] for r in runs) / len(runs), [sum(r[1][l] for r in runs) / len(runs) for l in range(n)]
    base, _ = mean_read('allD.txt')
    options = []
    for l in range(n):
        o = {'D': (0.0, 1.0)}
        for k in 'THAS':
            if all(os.path.exists(os.path.join(d, f'L{l}_{k}.txt')) for d in sweeps):
                kl, density = mean_read(f'L{l}_{k}.txt')
                o[k] = (kl - base, density[l])
        for a in 'HA':  # sparse heads from H or A, dense heads from S: the two changes add
            if a in o and 'S' in o:
                o[a + 'S'] = tuple(o[a][i] + o['S'][i] - o['T'][i] for i in range(2))
        options.append(o)
    steps = 400
    unit = budget / steps
    best = {0: (0.0, [])}  # KL steps used -> (summed density, choices)
    for o in options:
        nxt = {}
        for used, (dens, chosen) in best.items():
            for k, (dkl, d) in o.items():
                u = used + max(0, math.ceil(dkl / unit))
                if u <= steps and (u not in nxt or nxt[u][0] > dens + d):
                    nxt[u] = (dens + d, chosen + [k])
        best = nxt
    dens, chosen = min(best.values())
    predicted = base + sum(options[l][k][0] for l, k in enumerate(chosen))
    result = compose(settings, chosen)
    for layer in result['layers']:
        if smooth_q:
            layer['smooth_q'] = True
        if fixed_point_pv:
            layer['fixed_point_pv'] = True
    with open(out, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'options: {" ".join(chosen)}')
    print(f'predicted: KL {predicted:.5f} nats per token (all dense {base:.5f}), mean density {dens / n:.3f}; wrote {out}')

if __name__ == '__main__':
    main()
