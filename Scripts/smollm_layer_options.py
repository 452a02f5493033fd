#!/usr/bin/env python3
"""Per-layer options of a tuned SmolLM2 settings file (from Scripts/smollm-tune.sh), for the
layer-sensitivity sweep (Scripts/smollm-sensitivity.sh) and the final choice
(Scripts/smollm_select_layers.py).

Options of a layer: D every head dense (INT8 Q.K over all blocks), T as tuned, H the sparse
heads 1.5x as aggressive (CDF: 1 - tau grows 1.5x; top-k: k x 0.85), A 2x (k x 0.7), S the
heads the tuner left dense made sparse (CDF 0.984375 or top-k 0.5, theta 0.25, no stage 2),
and HS / AS (both changes).

  smollm_layer_options.py variants TUNED.json OUTDIR   allD/allT/allH/allA/allS and L{l}_{X}.json
                                                      (layer l with option X, every other D)
  smollm_layer_options.py compose TUNED.json "D T AS ..." OUT.json   one option per layer
"""
import copy, json, os, sys

def mode(layer):
    return 'topk' if 'topk' in layer['heads'][0] else 'tau'

def head(h, option, m):
    h = dict(h)
    if option == 'D':
        h.update({'theta': 2.0, m: 1.0, 'lambda': None, 'dense': True})
    elif option in ('A', 'H') and not h['dense']:
        if m == 'tau':
            h['tau'] = 1 - (2 if option == 'A' else 1.5) * (1 - h['tau'])
        else:
            h['topk'] = max(1 / 32, h['topk'] * (0.7 if option == 'A' else 0.85))
    elif option == 'S' and h['dense']:
        h.update({'theta': 0.25, m: 0.984375 if m == 'tau' else 0.5, 'lambda': None, 'dense': False})
    return h

def layer(L, option):
    L = copy.deepcopy(L)
    m = mode(L)
    if len(option) == 2:  # HS, AS: option[0] for the sparse heads, S for the dense ones
        L['heads'] = [head(h, 'S' if h['dense'] else option[0], m) for h in L['heads']]
    else:
        L['heads'] = [head(h, option, m) for h in L['heads']]
    return L

def compose(settings, options):
    out = dict(settings)
    out['layers'] = [layer(L, o) for L, o in zip(settings['layers'], options)]
    return out

def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ('variants', 'compose'):
        sys.exit(__doc__)
    settings = json.load(open(sys.argv[2]))
    n = len(settings['layers'])
    if sys.argv[1] == 'compose':
        options = sys.argv[3].split()
        if len(options) != n:
            sys.exit(f'{len(options)} options for {n} layers')
        print(json.dumps(compose(settings, options), indent=1))
        return
    out = sys.argv[3]
    os.makedirs(out, exist_ok=True)
    def write(name, options):
        with open(os.path.join(out, name + '.json'), 'w') as f:
            json.dump(compose(settings, options), f)
    for o in 'DTHAS':
        write('all' + o, [o] * n)
    for l in range(n):
        for o in 'THAS':
            if o != 'T' and layer(settings['layers'][l], o) == settings['layers'][l]:
                continue  # the same as T
            write(f'L{l}_{o}', ['D'] * l + [o] + ['D'] * (n - l - 1))

if __name__ == '__main__':
    main()
