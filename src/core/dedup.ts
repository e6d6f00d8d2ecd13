/**
 * DCP's dedup_save_plans (_dedup_save_plans.py): an item planned by several ranks
 * (a replicated tensor or value) is kept by exactly one of them.
 */
import { metadataIndexKey } from './metadata.js';
import type { SavePlan, WriteItem } from './planner.js';
import { tensorStorageSize } from './planner-helpers.js';

/**
 * For each item identity (fqn + offset, see `metadataIndexKey`), in order of first
 * appearance, keeps the item on the plan with the fewest bytes assigned so far (ties
 * go to the lowest rank), or always on the lowest rank with `saveToLowestRank`. Bytes
 * count as DCP counts them: global numel × element size for tensors, 1 for anything
 * else (or an empty tensor). Returns new plans; item order within a plan is kept.
 */
export function dedupSavePlans(allPlans: readonly SavePlan[], saveToLowestRank = false): SavePlan[] {
  const planIndicesByKey = new Map<string, number[]>();
  const itemByKey = new Map<string, WriteItem>();
  allPlans.forEach((plan, planIdx) => {
    for (const item of plan.items) {
      const key = metadataIndexKey(item.index);
      const planIndices = planIndicesByKey.get(key);
      if (planIndices === undefined) planIndicesByKey.set(key, [planIdx]);
      else if (planIndices[planIndices.length - 1] !== planIdx) planIndices.push(planIdx);
      itemByKey.set(key, item);
    }
  });

  const toRemove = allPlans.map(() => new Set<string>());
  const planSize = allPlans.map(() => 0);
  for (const [key, planIndices] of planIndicesByKey) {
    let selected = planIndices[0]!;
    if (!saveToLowestRank) {
      for (const planIdx of planIndices) if (planSize[planIdx]! < planSize[selected]!) selected = planIdx;
    }
    planSize[selected]! += tensorStorageSize(itemByKey.get(key)!) || 1;
    for (const planIdx of planIndices) if (planIdx !== selected) toRemove[planIdx]!.add(key);
  }

  return allPlans.map((plan, planIdx) => {
    const remove = toRemove[planIdx]!;
    if (remove.size === 0) return { ...plan, items: [...plan.items] };
    return { ...plan, items: plan.items.filter((item) => !remove.has(metadataIndexKey(item.index))) };
  });
}
