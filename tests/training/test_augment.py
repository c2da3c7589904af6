import torch
import torch.nn.functional as F

from skipfold.training.augment import random_crop_flip, standardize


def test_each_output_is_a_crop_of_the_padded_image_possibly_flipped():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, torch.Generator().manual_seed(0), padding=2)
    padded = F.pad(images, (2, 2, 2, 2))
    flips = 0
    for i in range(16):
        candidates = [
            (padded[i, :, dy : dy + 8, dx : dx + 8], flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (False, True)
        ]
        matches = [
            flip
            for crop, flip in candidates
            if torch.equal(out[i], crop.flip(-1) if flip else crop)
        ]
        assert matches, f"image {i} is no crop of its padded input"
        flips += matches[0]
    assert 0 < flips < 16  # both flipped and unflipped images occur


def test_no_padding_flips_only():
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, torch.Generator().manual_seed(0), padding=0)
    same = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    assert all(s or f for s, f in zip(same, flipped, strict=True))
    assert 0 < sum(flipped) < 32


def test_same_generator_state_gives_same_augmentation():
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    a = random_crop_flip(images, torch.Generator().manual_seed(5))
    b = random_crop_flip(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_standardize_uses_the_given_statistics():
    images = torch.full((2, 3, 4, 4), 51, dtype=torch.uint8)  # 0.2 on the 0..1 scale
    mean, std = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.5, 0.5, 0.25])
    out = standardize(images, mean, std)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.2, 0.0, -0.4]))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_per_image_standardization_gives_each_image_zero_mean_unit_std():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    images[1] = 200  # flat: its std is 0, the floor 1/sqrt(3*8*8) keeps it finite
    ignored = torch.tensor([9.0, 9.0, 9.0])
    x = standardize(images, ignored, ignored, per_image=True)
    for i in (0, 2, 3):
        assert abs(x[i].mean().item()) < 1e-5
        assert abs(x[i].std(correction=0).item() - 1) < 1e-4
    assert torch.equal(x[1], torch.zeros_like(x[1]))
    # invariant to brightness and contrast: the reason the SkipInit paper uses it
    brighter = (images[0].float() * 0.5 + 40).round().to(torch.uint8)
    y = standardize(torch.stack([brighter]), ignored, ignored, per_image=True)
    assert (y[0] - x[0]).abs().max() < 0.05
