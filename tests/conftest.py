import torch

# The course's models are small: one thread is faster than two fighting over
# two cores, and it keeps timings steady when other work shares the machine.
torch.set_num_threads(1)
